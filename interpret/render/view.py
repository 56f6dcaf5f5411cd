"""Presentation helpers shared by the HTML and text templates (layout only, no clinical logic)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from interpret.models import EarlierOut, FindingOut, Interpretation, NotAssessedOut, ResultOut
from interpret.units import format_number

SEVERITY_LABELS = {
    "critical": "Critical",
    "warning": "Warning",
    "advisory": "Advisory",
    "info": "Information",
}
STATUS_LABELS = {
    "critical_low": "critically low",
    "low": "low",
    "normal": "normal",
    "high": "high",
    "critical_high": "critically high",
    None: "no interval",
}


NARROWEST_LABELLED = 18.0  # percent of the bar: narrower, the interval's ends share one label


@dataclass(frozen=True)
class RangeBar:
    """Where the value and the interval sit on one axis, in percent of the bar's width."""

    interval_left: float
    interval_width: float
    marker: float
    earlier: tuple[tuple[float, str], ...] = ()  # (position, "3.0 mmol/L, 24 h before") of earlier values
    critical: tuple[tuple[float, str], ...] = ()  # (position, "critical below 2.5") of the critical limits
    low: str = ""  # the interval's ends and the value, as numbers under the bar
    high: str = ""
    value: str = ""

    @property
    def ends_apart(self) -> bool:
        """Whether the interval is wide enough on the bar for its two ends to be labelled apart
        (else one label, "135–145", under its middle: two would overprint)."""
        return self.interval_width >= NARROWEST_LABELLED


def range_bar(result: ResultOut, earlier: list[EarlierOut] | None = None) -> RangeBar | None:
    interval = result.reference_interval
    if interval is None or interval.low is None or interval.high is None:
        return None
    low, high, value = interval.low, interval.high, result.value
    # earlier values in this result's unit, as dots on the same scale (a small trend)
    to_shown = result.value / result.canonical_value if result.canonical_value else 1.0
    before = [(e.canonical_value * to_shown, f"{e.shown}, {e.hours_before:g} h before") for e in earlier or []]
    limits = [
        (v, f"critical {word} {format_number(v)}")
        for v, word in ((result.critical_below, "below"), (result.critical_at_or_above, "at or above"))
        if v is not None
    ]
    span = max(high - low, 1e-9)
    start = min(low - 0.5 * span, value, *(v for v, _ in before), *(v for v, _ in limits))
    end = max(high + 0.5 * span, value, *(v for v, _ in before), *(v for v, _ in limits))
    width = end - start

    def pct(x: float) -> float:
        return round(100 * (x - start) / width, 1)

    return RangeBar(
        pct(low),
        round(pct(high) - pct(low), 1),
        pct(value),
        tuple((pct(v), text) for v, text in before),
        tuple((pct(v), text) for v, text in limits),
        format_number(low),
        format_number(high),
        format_number(value),
    )


def group_not_assessed(items: list[NotAssessedOut]) -> list[tuple[str, list[str]]]:
    """Not-assessed rules grouped by what was missing: "magnesium: not measured" -> titles."""
    groups: dict[str, list[str]] = {}
    for item in items:
        for missing in item.missing or ["inputs missing"]:
            groups.setdefault(missing, []).append(item.title)
    return sorted(groups.items())


def earlier_by_analyte(interpretation: Interpretation) -> list[tuple[str, list[EarlierOut]]]:
    """Earlier results, one row per analyte (latest first), in the order of this panel's results."""
    rows: dict[str, list[EarlierOut]] = {}
    for e in interpretation.earlier:
        rows.setdefault(e.label, []).append(e)
    return list(rows.items())


@dataclass(frozen=True)
class Entry:
    """A finding as the report shows it: its evidence lines (`evidence`: each stated in full
    the first time the report states it, then by its value alone, `as_above`), the
    single-result findings it combines inside it (`FindingOut.explains`) with their lines that
    it does not already state, and whether the critical note is shown here (once per report)."""

    finding: FindingOut
    evidence: list[str]
    inner: list[tuple[FindingOut, list[str]]]
    critical_note: str | None


def as_above(statement: str) -> str:
    """An evidence line already stated in this report, by its value alone: "Potassium 3.0 mmol/L:
    low; 3.5–5.0 mmol/L, default adult interval" -> "Potassium 3.0 mmol/L: low (as above)"."""
    head = statement.split("; ", 1)[0]
    return f"{head} (as above)"


def entries(interpretation: Interpretation) -> list[Entry]:
    findings = interpretation.findings
    owner: dict[str, str] = {}
    for f in findings:  # a finding combined by several patterns goes inside the first shown
        for code in f.explains:
            owner.setdefault(code, f.code)
    by_code = {f.code: f for f in findings}
    out, noted = [], False
    said: set[str] = set()  # the evidence lines stated so far in the report

    def once(statements: list[str]) -> list[str]:
        shown = [as_above(s) if s in said else s for s in statements]
        said.update(statements)
        return shown

    for f in findings:
        if f.code in owner and owner[f.code] != f.code:
            continue
        stated = {e.statement for e in f.evidence}
        evidence = once([e.statement for e in f.evidence])
        inner = []
        for code in (c for c, o in owner.items() if o == f.code):
            folded = by_code[code]
            inner.append((folded, once([e.statement for e in folded.evidence if e.statement not in stated])))
            stated |= {e.statement for e in folded.evidence}
        notes = [f.critical_note, *(i.critical_note for i, _ in inner)]
        note = next((n for n in notes if n), None)
        out.append(Entry(f, evidence, inner, None if noted else note))
        noted = noted or note is not None
    return out


def impression(shown: list[Entry]) -> str:
    """One line to read first: the findings by severity, and what the most severe say. It
    counts the findings as shown (`entries`): those folded in count with their pattern."""
    if not shown:
        return "No finding fired for these inputs"
    counts: dict[str, int] = {}
    for e in shown:
        counts[e.finding.severity] = counts.get(e.finding.severity, 0) + 1
    tally = ", ".join(f"{counts[s]} {IMPRESSION_WORDS[s][counts[s] > 1]}" for s in SEVERITY_LABELS if s in counts)
    top = [e.finding.title for e in shown][:2]
    return f"{tally} — {'; '.join(top)}"


# how the impression line counts each severity (one, several)
IMPRESSION_WORDS = {
    "critical": ("critical", "critical"),
    "warning": ("warning", "warnings"),
    "advisory": ("advisory", "advisories"),
    "info": ("note", "notes"),
}


def context(interpretation: Interpretation) -> dict[str, Any]:
    shown = entries(interpretation)
    return {
        "r": interpretation,
        "entries": shown,
        "impression": impression(shown),
        # printed in the page's header only: the report's content does not depend on it
        "generated_at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "earlier": earlier_by_analyte(interpretation),
        "bars": {
            res.analyte: range_bar(res, [e for e in interpretation.earlier if e.analyte == res.analyte])
            for res in interpretation.results
        },
        "not_assessed": group_not_assessed(interpretation.not_assessed),
        "severity_labels": SEVERITY_LABELS,
        "status_labels": STATUS_LABELS,
    }
