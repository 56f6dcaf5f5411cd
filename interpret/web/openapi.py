"""The panel's JSON Schema as the ruleset accepts it, for the OpenAPI document.

The pydantic model says only "a string" for an analyte or a unit; the ruleset knows which
analytes (names, aliases, LOINC codes), which units for each, and the plausible range of each
value in each unit. A client generated from the document, or a property-based tester, then
sends what is accepted. Written from the same ruleset objects the validator uses, so the
document cannot drift from `validate.py`. Two refusals JSON Schema cannot express are said in
the description: the same analyte twice with different values, and a range whose low is above
its high.
"""

from __future__ import annotations

import math
from typing import Any

from interpret.ruleset import Ruleset

NON_BLANK = r"\S"


def result_schema(rs: Ruleset) -> dict[str, Any]:
    """One alternative per analyte and unit: its spellings, its unit spellings, its values."""
    options = []
    for name, analyte in rs.analytes.items():
        if analyte.calculated:
            continue
        spellings = sorted({name, analyte.label, *analyte.aliases, *analyte.loinc})
        for unit in analyte.units:
            options.append(_option(rs, name, spellings, unit))
    return {
        "title": "ResultIn",
        "description": "One result. An analyte may appear more than once only with the same value "
        "(in its canonical unit); a reference range's low may not be above its high.",
        "oneOf": options,
    }


def _option(rs: Ruleset, analyte: str, spellings: list[str], unit: str) -> dict[str, Any]:
    units = sorted({unit, *rs.units.units[unit].aliases})
    factor = rs.units.factor(analyte, unit)
    limits = rs.plausibility[analyte]
    low = limits.get("refuse_below")
    high = limits.get("refuse_above")
    value: dict[str, Any] = {"type": "number", "minimum": 0}
    if low is not None:
        value["minimum"] = _inside(low.for_unit(unit) / factor, up=True)
    if high is not None:
        value["maximum"] = _inside(high.for_unit(unit) / factor, up=False)
    bound = {
        "type": "number",
        "minimum": value["minimum"],
        **({"maximum": value["maximum"]} if "maximum" in value else {}),
    }
    return {
        "type": "object",
        "additionalProperties": False,
        "required": ["analyte", "value", "unit"],
        "properties": {
            "analyte": {"type": "string", "enum": spellings, "description": f"{analyte}: a name, alias or LOINC code"},
            "value": value,
            "unit": {"type": "string", "enum": units},
            "reference_range": {
                "type": "object",
                "additionalProperties": False,
                "minProperties": 1,
                "properties": {"low": bound, "high": bound},
                "description": "The laboratory's own interval, in the result's unit",
            },
        },
    }


def _inside(limit: float, up: bool) -> float:
    """A limit nudged inside the accepted range, so that float noise in the unit conversion
    cannot put a schema-valid value just outside it."""
    scale = 1e9
    return math.ceil(limit * (1 + 1e-9) * scale) / scale if up else math.floor(limit * (1 - 1e-9) * scale) / scale


def patient_schema(rs: Ruleset, base: dict[str, Any]) -> dict[str, Any]:
    from interpret.facts import SEXES

    ages = rs.meta.patient_age
    schema = dict(base)
    schema["properties"] = {
        "age": {"anyOf": [{"type": "number", "minimum": ages.min, "maximum": ages.max}, {"type": "null"}]},
        "sex": {"anyOf": [{"type": "string", "enum": sorted(SEXES)}, {"type": "null"}]},
    }
    return schema


def medication_schema(base: dict[str, Any]) -> dict[str, Any]:
    schema = dict(base)
    schema["properties"] = {**base["properties"], "name": {"type": "string", "pattern": NON_BLANK}}
    return schema


def apply(rs: Ruleset, components: dict[str, Any], panel: dict[str, Any]) -> None:
    """Tighten the generated schemas in place: results, patient, medications."""
    components["ResultIn"] = result_schema(rs)
    if "PatientIn" in components:
        components["PatientIn"] = patient_schema(rs, components["PatientIn"])
    if "MedicationIn" in components:
        components["MedicationIn"] = medication_schema(components["MedicationIn"])
    medications = panel.get("properties", {}).get("medications")
    if medications:
        for choice in medications.get("anyOf", []):
            items = choice.get("items")
            for option in (items or {}).get("anyOf", []):
                if option.get("type") == "string":
                    option["pattern"] = NON_BLANK
