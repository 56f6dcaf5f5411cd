"""The web form: form fields <-> the core's input shape, and errors back to their fields.

Works without JavaScript: a plain POST of form fields, answered with the same page, the form
kept filled in, and either the report (the command line's HTML template) or the errors next
to the fields that caused them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from interpret.ruleset import Ruleset
from interpret.validate import Refusal, read_number

FORM_ANALYTES = (
    "potassium",
    "sodium",
    "magnesium",
    "calcium",
    "albumin",
    "glucose",
    "creatinine",
    "egfr",
)

# One-click examples (inputs, not clinical knowledge): compact panels for the form.
EXAMPLES: dict[str, dict[str, Any]] = {
    "low-k-low-mg-loop-diuretic": {
        "label": "Low K and low Mg on furosemide",
        "values": {
            "potassium": ("3.0", "mmol/L"),
            "magnesium": ("1.3", "mg/dL"),
            "sodium": ("136", "mmol/L"),
            "creatinine": ("88", "umol/L"),
        },
        "age": "72",
        "sex": "female",
        "medications": "furosemide 40 mg PO daily\nomeprazole 20 mg daily",
    },
    "haemolysed-high-k": {
        "label": "High K in a haemolysed sample",
        "values": {
            "potassium": ("6.3", "mEq/L"),
            "sodium": ("139", "mEq/L"),
            "creatinine": ("1.1", "mg/dL"),
            "magnesium": ("2.1", "mg/dL"),
        },
        "age": "58",
        "sex": "male",
        "medications": "lisinopril 20 mg daily\nKlor-Con 10 mEq",
        "hemolyzed": True,
    },
    "ckd-high-mg-antacid": {
        "label": "High Mg with CKD and antacids",
        "values": {
            "magnesium": ("1.45", "mmol/L"),
            "potassium": ("5.7", "mmol/L"),
            "creatinine": ("265", "umol/L"),
            "calcium": ("2.05", "mmol/L"),
            "albumin": ("31", "g/L"),
        },
        "age": "81",
        "sex": "female",
        "medications": "Maalox 10 mL QID\nspironolactone 25 mg",
    },
}


@dataclass
class FormState:
    """What the form shows: the values as typed, and an error per field name."""

    values: dict[str, str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    general: list[str] = field(default_factory=list)


def state_from_example(name: str) -> FormState:
    example = EXAMPLES.get(name)
    if example is None:
        return FormState()
    values: dict[str, str] = {}
    for analyte, (value, unit) in example["values"].items():
        values[analyte], values[f"{analyte}_unit"] = value, unit
    for key in ("age", "sex", "medications"):
        values[key] = example.get(key, "")
    if example.get("hemolyzed"):
        values["hemolyzed"] = "on"
    return FormState(values=values)


def panel_from_form(values: dict[str, str]) -> tuple[dict[str, Any], list[str]]:
    """The core's input, and which analyte each results[i] came from (to place errors)."""
    results, order = [], []
    for analyte in FORM_ANALYTES:
        raw = values.get(analyte, "").strip()
        if not raw:
            continue
        result: dict[str, Any] = {
            "analyte": analyte,
            "value": read_number(raw),
            "unit": values.get(f"{analyte}_unit", ""),
        }
        low, high = (
            values.get(f"{analyte}_low", "").strip(),
            values.get(f"{analyte}_high", "").strip(),
        )
        if low or high:
            result["reference_range"] = {k: read_number(v) for k, v in (("low", low), ("high", high)) if v}
        results.append(result)
        order.append(analyte)
    panel: dict[str, Any] = {"results": results}
    patient: dict[str, Any] = {}
    if values.get("age", "").strip():
        patient["age"] = read_number(values["age"])
    if values.get("sex", "").strip():
        patient["sex"] = values["sex"]
    if patient:
        panel["patient"] = patient
    medications = [line.strip() for line in values.get("medications", "").splitlines() if line.strip()]
    if values.get("medications_known", "on") == "on" or medications:
        panel["medications"] = medications
    panel["specimen"] = {"hemolyzed": values.get("hemolyzed") == "on"}
    return panel, order


def place_errors(errors: list[Refusal], order: list[str]) -> FormState:
    """Each refusal beside the field it concerns, by its path."""
    state = FormState()
    for error in errors:
        path, message, index = error.path, error.message, error.result
        if index is not None and index < len(order):
            analyte = order[index]
            part = str(path[2]) if len(path) > 2 else ""
            name = {"unit": f"{analyte}_unit", "reference_range": f"{analyte}_low"}.get(part, analyte)
        elif path[:1] == ("patient",) and len(path) > 1:
            name = str(path[1])
        elif path[:1] == ("medications",):
            name = "medications"
        else:
            state.general.append(
                f"{error.location}: {message}" if path != ("results",) else "Enter at least one result."
            )
            continue
        state.errors[name] = message if name not in state.errors else f"{state.errors[name]}; {message}"
    return state


def unit_choices(ruleset: Ruleset) -> dict[str, list[tuple[str, str]]]:
    return {a: [(u, ruleset.units.display(u)) for u in ruleset.analytes[a].units] for a in FORM_ANALYTES}
