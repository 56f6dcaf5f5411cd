"""From input (a dict or `PanelIn`) to a `Panel` in canonical units, or located errors.

Refused, never interpreted (findings.md): a value that is not a finite number, negative or
beyond the plausibility limits; an unknown analyte or unit, or a unit that does not fit the
analyte; the same analyte twice with different values; age under 18 or over 120.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from interpret.facts import SEXES
from interpret.medications import MedicationMatch
from interpret.models import MedicationIn, PanelIn, ResultIn
from interpret.ruleset import Ruleset
from interpret.units import format_number, is_censored


class InputError(ValueError):
    """Invalid input; `errors` is a list of (location, message), e.g. ("results[1].unit", ...)."""

    def __init__(self, errors: list[tuple[str, str]]) -> None:
        super().__init__("; ".join(f"{loc}: {msg}" for loc, msg in errors))
        self.errors = errors


@dataclass(frozen=True, slots=True)
class Result:
    analyte: str
    value: float  # as reported
    unit: str  # unit key as reported
    canonical: float
    lab_low: float | None = None  # the laboratory's own interval, canonical units
    lab_high: float | None = None


@dataclass(frozen=True, slots=True)
class Panel:
    age: float | None
    sex: str | None  # female, male, other, unknown
    results: dict[str, Result]
    medications: tuple[MedicationMatch, ...] | None
    hemolyzed: bool | None


def read_number(text: str, decimal_comma: bool = True) -> float | str:
    """A number typed by a person or found in a cell: "3.4", " 3,4 " (decimal comma, when
    allowed). Anything unparsable is returned as text, so validation names it in its error."""
    cleaned = text.strip()
    if decimal_comma and cleaned.count(",") == 1 and "." not in cleaned:
        cleaned = cleaned.replace(",", ".")
    try:
        return float(cleaned)
    except ValueError:
        return text.strip()


def location(loc: tuple[Any, ...]) -> str:
    """("results", 1, "unit") -> "results[1].unit"; pydantic's union branch names dropped."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        elif part in ("str", "MedicationIn") or "[" in str(part):
            continue
        else:
            text += f".{part}" if text else str(part)
    return text or "(body)"


def parse_input(data: Any) -> PanelIn:
    """A dict, a `PanelIn`, or raw JSON bytes (parsed and checked in one pass by pydantic)."""
    if isinstance(data, PanelIn):
        return data
    try:
        if isinstance(data, bytes | str):
            return PanelIn.model_validate_json(data)
        return PanelIn.model_validate(data)
    except ValidationError as exc:
        raise InputError([(location(e["loc"]), _message(e)) for e in exc.errors()]) from None


def _message(error: Any) -> str:
    """pydantic's message, but a censored value ("<2.0", ">60") is named as such."""
    given = error.get("input")
    if isinstance(given, str) and is_censored(given) and error["loc"][-1:] == ("value",):
        return f"{given.strip()!r} is a bound (a censored value), not a result: give the number, or leave it out"
    return str(error["msg"])


def validate_panel(data: Any, ruleset: Ruleset) -> Panel:
    panel_in = parse_input(data)
    errors: list[tuple[str, str]] = []
    age, sex = _patient(panel_in, ruleset, errors)
    results: dict[str, Result] = {}
    first_seen: dict[str, int] = {}
    for i, raw in enumerate(panel_in.results):
        result = _result(raw, f"results[{i}]", ruleset, errors)
        if result is None:
            continue
        previous = results.get(result.analyte)
        if previous is None:
            results[result.analyte] = result
            first_seen[result.analyte] = i
        elif not math.isclose(previous.canonical, result.canonical, rel_tol=1e-9):
            errors.append(
                (
                    f"results[{i}]",
                    DUPLICATE_ANALYTE.format(
                        analyte=result.analyte,
                        first=f"results[{first_seen[result.analyte]}] has {format_number(previous.value)}",
                    ),
                )
            )
    medications = _medications(panel_in, ruleset, errors)
    if errors:
        raise InputError(errors)
    hemolyzed = panel_in.specimen.hemolyzed if panel_in.specimen else None
    return Panel(age, sex, results, medications, hemolyzed)


def age_problem(age: float, ruleset: Ruleset) -> str:
    """Why an age is refused (adults only, limits in rules/ruleset.yaml), or ""."""
    limits = ruleset.meta.patient_age
    if limits.min <= age <= limits.max:
        return ""
    return (
        f"{format_number(age)} is outside {format_number(limits.min)}-{format_number(limits.max)}: "
        "only adult reference intervals are available"
    )


def _patient(panel_in: PanelIn, ruleset: Ruleset, errors: list[tuple[str, str]]) -> tuple[float | None, str | None]:
    patient = panel_in.patient
    if patient is None:
        return None, None
    age, sex = patient.age, None
    if age is not None and (problem := age_problem(age, ruleset)):
        errors.append(("patient.age", problem))
    if patient.sex is not None and patient.sex.strip():
        sex = SEXES.get(patient.sex.strip().casefold())
        if sex is None:
            errors.append(
                (
                    "patient.sex",
                    f"{patient.sex!r} is not accepted; use female, male, other or unknown",
                )
            )
    return age, sex


# One wording for every runner (the batch long format says where the first value is too).
DUPLICATE_ANALYTE = "{analyte} is given twice with different values ({first})"


def _result(raw: ResultIn, where: str, ruleset: Ruleset, errors: list[tuple[str, str]]) -> Result | None:
    analyte = ruleset.analyte(raw.analyte)
    if analyte is None:
        errors.append(
            (
                f"{where}.analyte",
                f"{raw.analyte!r} is not a known analyte or LOINC code; accepted: "
                + ", ".join(name for name, a in ruleset.analytes.items() if not a.calculated),
            )
        )
        return None
    unit = ruleset.units.resolve(raw.unit)
    accepted = ruleset.units.accepted(analyte)
    if unit is None or unit not in accepted:
        errors.append(
            (
                f"{where}.unit",
                f"{raw.unit!r} is not a unit for {analyte}; accepted: " + ", ".join(accepted),
            )
        )
        return None
    factor = ruleset.units.factor(analyte, unit)
    canonical = raw.value * factor
    problem = _implausible(raw.value, canonical, analyte, unit, ruleset)
    if problem:
        errors.append((f"{where}.value", problem))
        return None
    low = high = None
    if raw.reference_range is not None:
        rr = raw.reference_range
        low = None if rr.low is None else rr.low * factor
        high = None if rr.high is None else rr.high * factor
        for name, converted in (("low", low), ("high", high)):
            # 1e308 g/dL overflows when converted to g/L: a keying error, not a limit.
            if converted is not None and not math.isfinite(converted):
                errors.append((f"{where}.reference_range.{name}", "too large to be a limit for this analyte"))
                return None
        if low is None and high is None:
            errors.append((f"{where}.reference_range", "give low, high or both"))
        elif low is not None and high is not None and low > high:
            errors.append((f"{where}.reference_range", "low is above high"))
    return Result(analyte, raw.value, unit, canonical, low, high)


def _implausible(value: float, canonical: float, analyte: str, unit: str, rs: Ruleset) -> str:
    limits = rs.plausibility[analyte]
    below, above = limits.get("refuse_below"), limits.get("refuse_above")
    too_low = below is not None and canonical < below.for_unit(unit)
    too_high = above is not None and canonical > above.for_unit(unit)
    if value >= 0 and not too_low and not too_high:
        return ""
    shown = f"{format_number(value)} {rs.units.display(unit)}"
    if value < 0:
        return f"{shown} is negative"
    bounds = " to ".join(t.words() for t in (below, above) if t)
    return f"{shown} is outside the plausible range for {analyte} ({bounds}): check the value and its unit"


def _medications(
    panel_in: PanelIn, ruleset: Ruleset, errors: list[tuple[str, str]]
) -> tuple[MedicationMatch, ...] | None:
    if panel_in.medications is None:
        return None
    matches = []
    for i, entry in enumerate(panel_in.medications):
        name, code = (entry.name, entry.rxnorm) if isinstance(entry, MedicationIn) else (entry, None)
        if not name.strip():
            errors.append((f"medications[{i}]", "empty medication entry"))
            continue
        matches.append(ruleset.medications.match(name.strip(), code))
    return tuple(matches)
