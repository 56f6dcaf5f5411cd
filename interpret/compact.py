"""The compact panel notation used by rule examples and test vignettes.

`{potassium: "3.0 mmol/L", magnesium: {value: 1.3, unit: mg/dL, low: 1.7, high: 2.2},
age: 72, sex: female, medications: [furosemide], hemolyzed: true}` expands to the full input
shape (`PanelIn`). It keeps rule files short enough for a clinician to read.
"""

from __future__ import annotations

from typing import Any

PATIENT_KEYS = ("age", "sex")


def expand(compact: dict[str, Any]) -> dict[str, Any]:
    panel: dict[str, Any] = {"results": []}
    patient = {k: compact[k] for k in PATIENT_KEYS if k in compact}
    if patient:
        panel["patient"] = patient
    if "medications" in compact:
        panel["medications"] = list(compact["medications"])
    if "hemolyzed" in compact:
        panel["specimen"] = {"hemolyzed": compact["hemolyzed"]}
    for key, value in compact.items():
        if key in (*PATIENT_KEYS, "medications", "hemolyzed"):
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
