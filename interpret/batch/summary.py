"""The batch summary page: counts, a K-against-Mg scatter, distributions; SVG drawn here.

Plots are inline SVG built from the sampled rows (no network, no plotting library): the page
is a single file a data team can archive with the run's output.
"""

from __future__ import annotations

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

WIDTH, HEIGHT, PAD = 560, 360, 44
SEVERITY_COLOURS = {
    "critical": "#9b1c1c",
    "warning": "#b45309",
    "advisory": "#1d4ed8",
    "info": "#64748b",
    None: "#cbd5e1",
}


@dataclass(frozen=True)
class Point:
    x: float
    y: float
    colour: str


def _scale(lo: float, hi: float, size: float, flip: bool = False) -> Any:
    span = (hi - lo) or 1.0

    def f(v: float) -> float:
        frac = (v - lo) / span
        return round(PAD + (1 - frac if flip else frac) * (size - 2 * PAD), 1)

    return f


def scatter(sample: pl.DataFrame, rs: Ruleset) -> dict[str, Any] | None:
    if not {"q__potassium", "q__magnesium"} <= set(sample.columns):
        return None
    both = sample.filter(pl.col("q__potassium").is_not_null() & pl.col("q__magnesium").is_not_null()).head(5000)
    if both.height == 0:
        return None
    k_lo, k_hi = 1.5, 8.0
    mg_lo, mg_hi = 0.2, 2.2
    sx, sy = _scale(k_lo, k_hi, WIDTH), _scale(mg_lo, mg_hi, HEIGHT, flip=True)
    points = [
        Point(
            sx(min(max(k, k_lo), k_hi)),
            sy(min(max(mg, mg_lo), mg_hi)),
            SEVERITY_COLOURS.get(sev, SEVERITY_COLOURS[None]),
        )
        for k, mg, sev in both.select("q__potassium", "q__magnesium", "max_severity").iter_rows()
    ]
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
        "width": WIDTH,
        "height": HEIGHT,
        "pad": PAD,
    }


def histograms(sample: pl.DataFrame, rs: Ruleset, plan: Plan) -> list[dict[str, Any]]:
    out = []
    for analyte in plan.analyte_columns:
        column = f"q__{'egfr_reported' if analyte == 'egfr' else analyte}"
        if column not in sample.columns:
            continue
        values = sample[column].drop_nulls()
        if values.len() == 0:
            continue
        lo, hi = float(values.quantile(0.005) or 0), float(values.quantile(0.995) or 1)
        if hi <= lo:
            hi = lo + 1
        bins = 30
        counts = [0] * bins
        for v in values.clip(lo, hi).to_list():
            counts[min(int((v - lo) / (hi - lo) * bins), bins - 1)] += 1
        top = max(counts) or 1
        bar_w = (WIDTH - 2 * PAD) / bins
        bars = [
            {"x": round(PAD + i * bar_w, 1), "w": round(bar_w - 1, 1), "h": round(c / top * (160 - 30), 1)}
            for i, c in enumerate(counts)
        ]
        unit = rs.units.display(rs.analytes[analyte].canonical_unit)
        iv = rs.interval(analyte, None, rs.analytes[analyte].canonical_unit)
        sx = _scale(lo, hi, WIDTH)
        band = None
        if iv is not None:
            left, right = max(iv.low, lo), min(iv.high, hi)
            if right > left:
                band = {"x": sx(left), "w": round(sx(right) - sx(left), 1)}
        out.append(
            {
                "analyte": analyte,
                "unit": unit,
                "n": values.len(),
                "bars": bars,
                "lo": format_number(lo),
                "hi": format_number(hi),
                "band": band,
                "median": format_number(float(values.cast(pl.Float64).median() or 0)),  # type: ignore[arg-type]
            }
        )
    return out


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
        )
    )
    path.write_text(html, encoding="utf-8")
