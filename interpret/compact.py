"""The compact panel notation used by rule examples and test vignettes.

`{potassium: "3.0 mmol/L", magnesium: {value: 1.3, unit: mg/dL, low: 1.7, high: 2.2},
age: 72, sex: female, medications: [furosemide], hemolyzed: true}` expands to the full input
shape (`PanelIn`). It keeps rule files short enough for a clinician to read.

Across time: `history: [{hours_before: 24, creatinine: 80 umol/L}]` (or `at:` an ISO time)
lists earlier specimens, and a medication `{name: KCl 20 mEq, started_hours_before: 10}`
has a start; both are counted back from `collected_at` (default 2026-01-10T08:00:00Z).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

PATIENT_KEYS = ("age", "sex")
TIME_KEYS = ("collected_at", "history")
DEFAULT_TIME = "2026-01-10T08:00:00Z"


def expand(compact: dict[str, Any]) -> dict[str, Any]:
    panel = _expand_specimen(compact)
    if "history" in compact or "collected_at" in compact:
        now = compact.get("collected_at", DEFAULT_TIME)
        panel["collected_at"] = now
        if "history" in compact:
            panel["history"] = [_earlier(entry, now) for entry in compact["history"]]
        if "medications" in panel:
            panel["medications"] = [_timed(m, now) for m in panel["medications"]]
    return panel


def _before(now: str, hours: float) -> str:
    return (datetime.fromisoformat(now) - timedelta(hours=hours)).isoformat()


def _earlier(entry: dict[str, Any], now: str) -> dict[str, Any]:
    at = entry["at"] if "at" in entry else _before(now, entry["hours_before"])
    specimen = _expand_specimen({k: v for k, v in entry.items() if k not in ("at", "hours_before")})
    return {
        "collected_at": at,
        "results": specimen["results"],
        **({"specimen": specimen["specimen"]} if "specimen" in specimen else {}),
    }


def _timed(entry: Any, now: str) -> Any:
    if isinstance(entry, dict) and "started_hours_before" in entry:
        timed = {k: v for k, v in entry.items() if k != "started_hours_before"}
        return {**timed, "start": _before(now, entry["started_hours_before"])}
    return entry


def _expand_specimen(compact: dict[str, Any]) -> dict[str, Any]:
    panel: dict[str, Any] = {"results": []}
    patient = {k: compact[k] for k in PATIENT_KEYS if k in compact}
    if patient:
        panel["patient"] = patient
    if "medications" in compact:
        panel["medications"] = list(compact["medications"])
    if "hemolyzed" in compact:
        panel["specimen"] = {"hemolyzed": compact["hemolyzed"]}
    for key, value in compact.items():
        if key in (*PATIENT_KEYS, *TIME_KEYS, "medications", "hemolyzed"):
            continue
        panel["results"].append(_result(key, value))
    return panel


def _result(analyte: str, value: Any) -> dict[str, Any]:
    if isinstance(value, str):
        number, _, unit = value.strip().partition(" ")
        return {"analyte": analyte, "value": float(number), "unit": unit.strip()}
    if isinstance(value, dict):
        result = {"analyte": analyte, "value": value["value"], "unit": value["unit"]}
        if "low" in value or "high" in value:
            result["reference_range"] = {k: value[k] for k in ("low", "high") if k in value}
        return result
    raise ValueError(f"{analyte}: write '3.0 mmol/L' or {{value, unit, low, high}}")
