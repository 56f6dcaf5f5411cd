"""The web form: form fields <-> the core's input shape, and errors back to their fields.

Works without JavaScript: a plain POST of form fields, answered with the same page, the form
kept filled in, and either the report (the command line's HTML template) or the errors next
to the fields that caused them.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from typing import Any

from interpret.resources import data_dir
from interpret.ruleset import Ruleset
from interpret.units import format_number
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

# One-click examples: the panels of examples/ (the same files the README and the command line
# use), by file name, with a label each.
EXAMPLE_LABELS = {
    "low-k-low-mg-loop-diuretic": "Low K and low Mg on furosemide",
    "haemolysed-high-potassium": "High K in a haemolysed sample",
    "ckd-high-magnesium-antacid": "High Mg with CKD and antacids",
    "hyperglycaemia-low-sodium-ssri": "High glucose and low sodium on an SSRI",
}


@functools.cache
def examples() -> dict[str, dict[str, Any]]:
    """Each example panel (JSON), by name."""
    folder = data_dir("examples", "low-k-low-mg-loop-diuretic.json")
    return {name: json.loads((folder / f"{name}.json").read_text(encoding="utf-8")) for name in EXAMPLE_LABELS}


@dataclass
class FormState:
    """What the form shows: the values as typed, and an error per field name."""

    values: dict[str, str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    general: list[str] = field(default_factory=list)


def state_from_example(name: str, ruleset: Ruleset) -> FormState:
    """The form filled in with an example panel; an unknown name is said, not ignored."""
    panel = examples().get(name)
    if panel is None:
        known = ", ".join(EXAMPLE_LABELS)
        return FormState(general=[f"There is no example named {name!r}; the examples are: {known}."])
    values: dict[str, str] = {}
    for r in panel["results"]:
        analyte = ruleset.analyte(r["analyte"]) or r["analyte"]
        values[analyte], values[f"{analyte}_unit"] = format_number(r["value"]), r["unit"]
        for end in ("low", "high"):
            if end in r.get("reference_range", {}):
                values[f"{analyte}_{end}"] = format_number(r["reference_range"][end])
    patient = panel.get("patient", {})
    values.update({k: str(patient[k]) for k in ("age", "sex") if k in patient})
    if panel.get("medications") is None:
        values["medications_known"] = "unknown"
    else:
        values["medications"] = "\n".join(m if isinstance(m, str) else m["name"] for m in panel["medications"])
    if panel.get("specimen", {}).get("hemolyzed"):
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
    # The clinician says whether the list is known: an empty known list is "no medications",
    # an unknown one leaves the medication rules not assessed (as the API's omission does).
    if values.get("medications_known", "listed") != "unknown" or medications:
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
