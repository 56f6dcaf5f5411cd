"""The batch summary page: counts, a K-against-Mg scatter, distributions; SVG drawn here.

Plots are inline SVG built from the sampled rows (no network, no plotting library): the page
is a single file a data team can archive with the run's output.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from interpret.batch.mapping import Plan
from interpret.batch.read import CsvSource
from interpret.batch.run import Stats
from interpret.render import environment
from interpret.ruleset import Ruleset
from interpret.units import format_number

WIDTH, HEIGHT, PAD = 760, 420, 48
HIST_HEIGHT, HIST_TOP, HIST_BOTTOM = 200, 16, 170  # the histogram's frame: counts from top to bottom
SEVERITY_COLOURS = {
    "critical": "#b91c1c",
    "warning": "#d97706",
    "advisory": "#2563eb",
    "info": "#0f766e",  # teal: told apart from "no finding" at a glance
    None: "#94a3b8",
}


@dataclass(frozen=True)
class Point:
    x: float
    y: float
    colour: str
    edge: bool  # beyond the axes: drawn on the edge, as a triangle


def _scale(lo: float, hi: float, size: float, flip: bool = False, pad: float = PAD) -> Any:
    span = (hi - lo) or 1.0

    def f(v: float) -> float:
        frac = (v - lo) / span
        return round(pad + (1 - frac if flip else frac) * (size - 2 * pad), 1)

    return f


def _jitter(i: int, step: float) -> float:
    """A deterministic offset within ± half the measurement step: values on a grid of 0.1
    mmol/L would otherwise lie on top of each other (the same file gives the same plot)."""
    return ((i * 2654435761) % 1000 / 1000 - 0.5) * step


def _step(values: pl.Series) -> float:
    """The measurement resolution: the most common gap between neighbouring distinct values."""
    distinct = values.unique().sort()
    gaps = distinct.diff().drop_nulls()
    gaps = gaps.filter(gaps > 1e-9)
    if gaps.len() == 0:
        return 0.0
    return float(gaps.round(6).mode().min() or 0.0)  # type: ignore[arg-type]


def scatter(sample: pl.DataFrame, rs: Ruleset) -> dict[str, Any] | None:
    if not {"q__potassium", "q__magnesium"} <= set(sample.columns):
        return None
    both = sample.filter(pl.col("q__potassium").is_not_null() & pl.col("q__magnesium").is_not_null()).head(5000)
    if both.height == 0:
        return None
    k_lo, k_hi = 1.5, 8.0
    mg_lo, mg_hi = 0.2, 2.2
    sx, sy = _scale(k_lo, k_hi, WIDTH), _scale(mg_lo, mg_hi, HEIGHT, flip=True)
    k_step, mg_step = _step(both["q__potassium"]), _step(both["q__magnesium"])
    points = []
    for i, (k, mg, sev) in enumerate(both.select("q__potassium", "q__magnesium", "max_severity").iter_rows()):
        edge = not (k_lo <= k <= k_hi and mg_lo <= mg <= mg_hi)
        x = min(max(k + _jitter(i, k_step), k_lo), k_hi)
        y = min(max(mg + _jitter(i + 7, mg_step), mg_lo), mg_hi)
        points.append(Point(sx(x), sy(y), SEVERITY_COLOURS.get(sev, SEVERITY_COLOURS[None]), edge))
    # the no-finding points first, the most severe last (on top)
    order = {c: n for n, c in enumerate(SEVERITY_COLOURS[s] for s in (None, "info", "advisory", "warning", "critical"))}
    points.sort(key=lambda p: order.get(p.colour, 0))
    k_iv, mg_iv = rs.interval("potassium", None, "mmol/L"), rs.interval("magnesium", None, "mmol/L")
    box = None
    if k_iv and mg_iv:
        box = {
            "x": sx(k_iv.low),
            "y": sy(mg_iv.high),
            "w": round(sx(k_iv.high) - sx(k_iv.low), 1),
            "h": round(sy(mg_iv.low) - sy(mg_iv.high), 1),
        }
    ticks_x = [(sx(v), format_number(v)) for v in (2, 3, 4, 5, 6, 7, 8)]
    ticks_y = [(sy(v), format_number(v)) for v in (0.4, 0.7, 1.0, 1.5, 2.0)]
    return {
        "points": points,
        "box": box,
        "ticks_x": ticks_x,
        "ticks_y": ticks_y,
        "n": both.height,
        "beyond": sum(p.edge for p in points),
        "jitter": (format_number(k_step / 2), format_number(mg_step / 2)),
        "width": WIDTH,
        "height": HEIGHT,
        "pad": PAD,
    }


def histograms(sample: pl.DataFrame, rs: Ruleset, plan: Plan) -> list[dict[str, Any]]:
    out = []
    for analyte in plan.analyte_columns:
        column = f"q__{'egfr_reported' if analyte == 'egfr' else analyte}"
        if column in sample.columns and (values := sample[column].drop_nulls().cast(pl.Float64)).len():
            out.append(_histogram(analyte, values, rs))
    return out


def _histogram(analyte: str, values: pl.Series, rs: Ruleset) -> dict[str, Any]:
    """Counts on a y axis; the axis spans the 0.5th-99.5th percentiles widened to the critical
    limits, and what lies beyond is counted in labelled tail bars (not folded into the edge
    bins); bins are whole multiples of the measurement step (no empty bins from a unit's
    conversion); a skewed analyte (99.5th percentile over 3 times the median, creatinine)
    on a log scale."""
    canonical = rs.analytes[analyte].canonical_unit
    below, above = rs.critical.get(analyte, (None, None))
    lo, hi = float(values.quantile(0.005) or 0), float(values.quantile(0.995) or 1)
    if below is not None:
        lo = min(lo, below.primary)
    if above is not None:
        hi = max(hi, above.primary)
    median = float(values.median() or 0)  # type: ignore[arg-type]
    log = lo > 0 and median > 0 and hi / median > 3
    forward = (lambda v: math.log10(v)) if log else (lambda v: v)
    step = _step(values)
    bins = 30
    start = forward(lo)
    width = (forward(hi) - start) / bins or 1.0
    if log and step > 0:  # the narrowest bin (at the low end) at least one measurement step
        width = max(width, math.log10(1 + step / lo))
        bins = max(1, math.ceil((forward(hi) - start) / width))
    elif step > 0:  # whole measurement steps per bin, edges half a step off the values
        width = max(step, round(width / step) * step)
        start = lo - step / 2
        bins = max(1, min(60, math.ceil((hi - start) / width)))
    counts = [0] * bins
    low_tail = high_tail = 0
    for v in values.to_list():
        if v < lo:
            low_tail += 1
        elif v > hi:
            high_tail += 1
        else:
            counts[min(max(int((forward(v) - start) / width), 0), bins - 1)] += 1
    top = max([*counts, low_tail, high_tail]) or 1
    inner = WIDTH - 2 * PAD - 2 * 28  # room for the two tail bars
    bar_w = inner / bins
    left = PAD + 28
    frame = HIST_BOTTOM - HIST_TOP

    def height(c: int) -> float:
        return round(c / top * frame, 1)

    bars = [
        {"x": round(left + i * bar_w, 1), "w": round(max(bar_w - 1, 0.5), 1), "h": height(c), "n": c}
        for i, c in enumerate(counts)
    ]
    tails = [
        {"x": PAD, "h": height(low_tail), "n": low_tail, "label": f"< {format_number(lo)}"},
        {"x": WIDTH - PAD - 24, "h": height(high_tail), "n": high_tail, "label": f"> {format_number(hi)}"},
    ]
    scale = _scale(start, start + bins * width, inner + 2 * left, pad=left)
    ticks = _nice_ticks(lo, hi, log)
    iv = rs.interval(analyte, None, canonical)
    band = None
    if iv is not None:
        a, b = max(iv.low, lo), min(iv.high, hi)
        if b > a:
            band = {"x": scale(forward(a)), "w": round(scale(forward(b)) - scale(forward(a)), 1)}
    y_ticks = [(round(HIST_BOTTOM - frame * f, 1), format_number(round(top * f))) for f in (0, 0.5, 1)]
    return {
        "analyte": analyte,
        "unit": rs.units.display(canonical),
        "n": values.len(),
        "bars": bars,
        "tails": tails,
        "band": band,
        "x_ticks": [(scale(forward(t)), format_number(t)) for t in ticks],
        "y_ticks": y_ticks,
        "log": log,
        "median": format_number(round(median, 3)),
    }


def _nice_ticks(lo: float, hi: float, log: bool) -> list[float]:
    if log:
        ticks = [m * 10**e for e in range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1) for m in (1, 2, 5)]
    else:
        raw = (hi - lo) / 6
        magnitude = 10 ** math.floor(math.log10(raw)) if raw > 0 else 1
        step = min((m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw), default=raw)
        ticks = [round(step * i, 10) for i in range(math.ceil(lo / step), math.floor(hi / step) + 1)]
    return [t for t in ticks if lo <= t <= hi]


def shares(findings: list[tuple[str, str, dict[str, int], int]], interpreted: int) -> dict[str, str]:
    """Each finding's rows as a share of the interpreted rows."""
    return {code: f"{100 * total / interpreted:.1f}%" if interpreted else "—" for code, _, _, total in findings}


def write_summary(path: Path, rs: Ruleset, plan: Plan, stats: Stats, source: CsvSource, input_path: Path) -> None:
    sample = pl.concat(stats.samples, how="diagonal_relaxed") if stats.samples else pl.DataFrame()
    titles = {r.code: r.definition.title for r in rs.rules}
    findings = sorted(
        ((code, titles[code], counts, sum(counts.values())) for code, counts in stats.by_finding.items()),
        key=lambda item: -item[3],
    )
    html = (
        environment()
        .get_template("batch_summary.html")
        .render(
            rs=rs,
            disclaimer=rs.disclaimer(),
            stats=stats,
            findings=findings,
            severities=[t.name for t in reversed(rs.meta.severities)],
            colours=SEVERITY_COLOURS,
            not_assessed=sorted(stats.not_assessed.items(), key=lambda kv: -kv[1]),
            titles=titles,
            mapping=plan.describe(source.headers),
            scatter=scatter(sample, rs) if sample.height else None,
            histograms=histograms(sample, rs, plan) if sample.height else [],
            input_name=input_path.name,
            source=source,
            unrecognized=sorted(stats.unrecognized_medications.items(), key=lambda kv: -kv[1])[:25],
            share=shares(findings, stats.interpreted),
            standalone=True,  # a saved file: no links to the server's pages
        )
    )
    path.write_text(html, encoding="utf-8")
