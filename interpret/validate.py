"""From input (a dict or `PanelIn`) to a `Panel` in canonical units, or located errors.

Refused, never interpreted (findings.md): a value that is not a finite number, negative or
beyond the plausibility limits; an unknown analyte or unit, or a unit that does not fit the
analyte; the same analyte twice with different values; age under 18 or over 120.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from pydantic import ValidationError

from interpret.derive import FLOAT_OPS
from interpret.facts import SEXES
from interpret.medications import MedicationMatch
from interpret.models import EarlierSpecimenIn, MedicationIn, PanelIn, PatientIn, ResultIn
from interpret.ruleset import Ruleset
from interpret.units import format_number, is_censored

# Every refusal's words, by a stable code: the single panel, the web form, CDS Hooks and every
# batch runner say these and no others (a runner adds only where: a JSON path, a column).
REFUSALS = {
    "not_a_number": "{text!r} is not a number",
    "decimal_comma": "{text!r} has a decimal comma, ambiguous here: write it with a decimal point",
    "censored": "{text!r} is a bound (a censored value), not a result: give the number, or leave it out",
    "negative": "{value} is negative",
    "implausible": "{value} is outside the plausible range for {analyte} ({bounds}): check the value and its unit",
    "unknown_analyte": "{text!r} is not a known analyte or LOINC code; accepted: {accepted}",
    "unit": "{text!r} is not a unit for {analyte}; accepted: {accepted}",
    "duplicate_analyte": "{analyte} is given twice with different values ({first})",
    "age": "{age} is outside {min}-{max}: only adult reference intervals are available",
    "sex": "{text!r} is not accepted; use female, male, other or unknown",
    "not_yes_no": "{text!r} is not yes/no",
    "range_overflow": "too large to be a limit for this analyte",
    "range_empty": "give low, high or both",
    "range_reversed": "low is above high",
    "empty_medication": "empty medication entry",
    "no_results": "no result to interpret",  # a batch row with no result cell filled
    "input": "{text}",  # the input schema's own words (a missing field, a wrong type)
}


class Refusal(NamedTuple):
    """A located refusal as a value: where (JSON path parts), a stable code, the words.
    Callers place it by `path` (a form field, a FHIR resource, a CSV column), never by
    reading the text back."""

    path: tuple[str | int, ...]
    code: str
    message: str

    @property
    def location(self) -> str:
        return location(self.path)

    @property
    def result(self) -> int | None:
        """The index of the result it concerns, if it concerns one."""
        return self.path[1] if len(self.path) > 1 and self.path[0] == "results" else None  # type: ignore[return-value]


def refusal(path: tuple[str | int, ...], code: str, **values: Any) -> Refusal:
    return Refusal(path, code, REFUSALS[code].format(**values))


class InputError(ValueError):
    """Invalid input: every refusal found, each located (`Refusal`)."""

    def __init__(self, errors: list[Refusal]) -> None:
        super().__init__("; ".join(f"{e.location}: {e.message}" for e in errors))
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
    collected_at: datetime | None = None
    history: tuple[EarlierSpecimen, ...] = ()  # earlier than `collected_at`, latest first
    history_notes: tuple[str, ...] = ()  # history given but not used, and why
    # (hours before collection it started, or None) of each medication entry, in order
    started: tuple[float | None, ...] = ()


@dataclass(frozen=True, slots=True)
class EarlierSpecimen:
    hours_before: float  # before the current specimen's collection
    collected_at: datetime
    results: dict[str, Result]
    hemolyzed: bool | None


def read_number(text: str, decimal_comma: bool = True) -> float | str:
    """A number typed by a person or found in a cell: "3.4", " 3,4 " (decimal comma, when
    allowed). Anything unparsable is returned as text, so validation names it in its error."""
    cleaned = text.strip()
    if decimal_comma and cleaned.count(",") == 1 and "." not in cleaned:
        cleaned = cleaned.replace(",", ".")
    if not NUMBER.fullmatch(cleaned):  # Python's float() also takes "1_000", "٣.٤", "inf"
        return text.strip()
    return float(cleaned)


# A number as a laboratory writes one: ASCII digits, an optional sign, decimals, exponent.
# Written without escapes or non-capturing groups, so that SQL's regular expressions (every
# dialect's) read the same pattern (`sql/raw.py`).
NUMBER_PATTERN = "[+-]?([0-9]+([.][0-9]*)?|[.][0-9]+)([eE][+-]?[0-9]+)?"
NUMBER = re.compile(NUMBER_PATTERN)


def location(loc: tuple[Any, ...]) -> str:
    """("results", 1, "unit") -> "results[1].unit"."""
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
        raise InputError([schema_refusal(e) for e in exc.errors()]) from None


def schema_path(loc: tuple[Any, ...]) -> tuple[str | int, ...]:
    """pydantic's location without its union branch names ("str", "MedicationIn")."""
    return tuple(p for p in loc if isinstance(p, int) or (p not in ("str", "MedicationIn") and "[" not in str(p)))


def schema_refusal(error: Any) -> Refusal:
    """A schema error in the words a clinician uses: a number that is not one, a censored
    value ("<2.0", ">60") or a decimal comma named as such; otherwise pydantic's words."""
    path, given = schema_path(tuple(error["loc"])), error.get("input")
    if isinstance(given, str) and error["type"] == "float_parsing":
        return not_a_number(given, path)
    return refusal(path, "input", text=str(error["msg"]))


DECIMAL_COMMA = re.compile(r"^[-+]?\d+,\d+$")


def not_a_number(text: str, path: tuple[str | int, ...]) -> Refusal:
    """Why a text that should be a number is not one: a censored value ("<2.0", ">60") and
    a decimal comma are named as such (a JSON string, a form field or a CSV cell alike)."""
    cleaned = text.strip()
    if is_censored(cleaned):
        return refusal(path, "censored", text=cleaned)
    if DECIMAL_COMMA.match(cleaned):
        return refusal(path, "decimal_comma", text=cleaned)
    return refusal(path, "not_a_number", text=cleaned)


def validate_panel(data: Any, ruleset: Ruleset) -> Panel:
    try:
        panel_in = parse_input(data)
    except InputError as exc:
        raise InputError(exc.errors + _refusals_of_the_rest(data, ruleset)) from None
    errors: list[Refusal] = []
    age, sex = _patient(panel_in, ruleset, errors)
    results: dict[str, Result] = {}
    first_seen: dict[str, int] = {}
    for i, raw in enumerate(panel_in.results):
        result = _result(raw, ("results", i), ruleset, errors)
        if result is None:
            continue
        previous = results.get(result.analyte)
        if previous is None:
            results[result.analyte] = result
            first_seen[result.analyte] = i
        elif not math.isclose(previous.canonical, result.canonical, rel_tol=1e-9):
            first = f"results[{first_seen[result.analyte]}] has {format_number(previous.value)}"
            errors.append(refusal(("results", i), "duplicate_analyte", analyte=result.analyte, first=first))
    history = [_earlier_results(entry, h, ruleset, errors) for h, entry in enumerate(panel_in.history or [])]
    medications, started = _medications(panel_in, ruleset, errors)
    if errors:
        raise InputError(errors)
    hemolyzed = panel_in.specimen.hemolyzed if panel_in.specimen else None
    earlier, notes = _place_history(panel_in, history)
    return Panel(age, sex, results, medications, hemolyzed, panel_in.collected_at, earlier, notes, started)


def _earlier_results(entry: EarlierSpecimenIn, h: int, ruleset: Ruleset, errors: list[Refusal]) -> dict[str, Result]:
    """One earlier specimen's results, refused exactly as current ones (`history[2].results[0].unit`)."""
    results: dict[str, Result] = {}
    for i, raw in enumerate(entry.results):
        result = _result(raw, ("history", h, "results", i), ruleset, errors)
        if result is None:
            continue
        previous = results.get(result.analyte)
        if previous is not None and not math.isclose(previous.canonical, result.canonical, rel_tol=1e-9):
            first = f"history[{h}] has {format_number(previous.value)}"
            errors.append(
                refusal(("history", h, "results", i), "duplicate_analyte", analyte=result.analyte, first=first)
            )
        results.setdefault(result.analyte, result)
    return results


def _place_history(
    panel_in: PanelIn, history: list[dict[str, Result]]
) -> tuple[tuple[EarlierSpecimen, ...], tuple[str, ...]]:
    """The earlier specimens by their distance in time from this one, latest first; an entry
    that is not earlier, or history without this specimen's time, is named and not used."""
    if not history:
        return (), ()
    now = panel_in.collected_at
    if now is None:
        return (), (f"history of {len(history)} specimens not used: give collected_at, this specimen's time",)
    earlier, notes = [], []
    for h, (entry, results) in enumerate(zip(panel_in.history or [], history, strict=True)):
        hours = (now - entry.collected_at).total_seconds() / 3600
        if hours <= 0:
            notes.append(f"history[{h}] ({entry.collected_at.isoformat()}) is not earlier than this specimen: not used")
            continue
        hemolyzed = entry.specimen.hemolyzed if entry.specimen else None
        earlier.append(EarlierSpecimen(hours, entry.collected_at, results, hemolyzed))
    return tuple(sorted(earlier, key=lambda e: e.hours_before)), tuple(notes)


def _refusals_of_the_rest(data: Any, ruleset: Ruleset) -> list[Refusal]:
    """When the schema refuses part of a panel, the parts it accepts are still checked, so
    that every refusal is named at once (a value that is not a number and an age of 15),
    as the batch names them for a row."""
    if isinstance(data, bytes | str):
        try:
            data = json.loads(data)
        except ValueError:
            return []
    if not isinstance(data, dict):
        return []
    errors: list[Refusal] = []
    results = data.get("results")
    for i, raw in enumerate(results if isinstance(results, list) else []):
        try:
            _result(ResultIn.model_validate(raw), ("results", i), ruleset, errors)
        except ValidationError:
            continue  # named by the schema already
    try:
        patient = PatientIn.model_validate(data.get("patient") or {})
    except ValidationError:
        return errors
    _patient(PanelIn.model_construct(patient=patient, results=[]), ruleset, errors)
    return errors


def age_refused(age: Any, minimum: float, maximum: float, ops: Any = FLOAT_OPS) -> Any:
    """Whether an age is refused (adults only: limits in rules/ruleset.yaml), for every runner
    (one age, or a column of them: `derive.Ops`)."""
    return ops.below(age, minimum) | ops.above(age, maximum)


def value_checks(
    value: Any, canonical: Any, refuse_below: Any, refuse_above: Any, ops: Any = FLOAT_OPS
) -> list[tuple[str, Any]]:
    """Why a result's value is refused, as (refusal code, condition), in the order they are
    worded: a negative value, then one beyond the plausibility limits (rules/analytes.yaml).
    Every runner decides with these: floats for one panel, columns for the batch."""
    return [
        ("negative", ops.below(value, 0.0)),
        ("implausible", ops.below(canonical, refuse_below) | ops.above(canonical, refuse_above)),
    ]


def age_refusal(age: float, ruleset: Ruleset) -> Refusal | None:
    """Adults only (limits in rules/ruleset.yaml)."""
    limits = ruleset.meta.patient_age
    if not age_refused(age, limits.min, limits.max):
        return None
    shown = (format_number(x) for x in (age, limits.min, limits.max))
    return refusal(("patient", "age"), "age", **dict(zip(("age", "min", "max"), shown, strict=True)))


def sex_refusal(text: str) -> tuple[str | None, Refusal | None]:
    """The sex a spelling means (`facts.SEXES`), or why it is refused; blank is unknown."""
    if not text.strip():
        return None, None
    sex = SEXES.get(text.strip().casefold())
    return sex, None if sex is not None else refusal(("patient", "sex"), "sex", text=text)


def _patient(panel_in: PanelIn, ruleset: Ruleset, errors: list[Refusal]) -> tuple[float | None, str | None]:
    patient = panel_in.patient
    if patient is None:
        return None, None
    age, sex = patient.age, None
    if age is not None and (problem := age_refusal(age, ruleset)):
        errors.append(problem)
    if patient.sex is not None:
        sex, refused = sex_refusal(patient.sex)
        if refused:
            errors.append(refused)
    return age, sex


def _result(raw: ResultIn, where: tuple[str | int, ...], ruleset: Ruleset, errors: list[Refusal]) -> Result | None:
    analyte = ruleset.analyte(raw.analyte)
    if analyte is None:
        accepted = ", ".join(name for name, a in ruleset.analytes.items() if not a.calculated)
        errors.append(refusal((*where, "analyte"), "unknown_analyte", text=raw.analyte, accepted=accepted))
        return None
    unit, problem = unit_refusal(raw.unit, analyte, ruleset, (*where, "unit"))
    if unit is None:
        errors.append(problem)  # type: ignore[arg-type]
        return None
    factor = ruleset.units.factor(analyte, unit)
    canonical = raw.value * factor
    if refused := value_refusal(raw.value, canonical, analyte, unit, ruleset, (*where, "value")):
        errors.append(refused)
        return None
    low = high = None
    if raw.reference_range is not None:
        rr = raw.reference_range
        low = None if rr.low is None else rr.low * factor
        high = None if rr.high is None else rr.high * factor
        for name, converted in (("low", low), ("high", high)):
            # 1e308 g/dL overflows when converted to g/L: a keying error, not a limit.
            if converted is not None and not math.isfinite(converted):
                errors.append(refusal((*where, "reference_range", name), "range_overflow"))
                return None
        if low is None and high is None:
            errors.append(refusal((*where, "reference_range"), "range_empty"))
        elif low is not None and high is not None and low > high:
            errors.append(refusal((*where, "reference_range"), "range_reversed"))
    return Result(analyte, raw.value, unit, canonical, low, high)


def unit_refusal(
    text: str, analyte: str, rs: Ruleset, path: tuple[str | int, ...]
) -> tuple[str, None] | tuple[None, Refusal]:
    """The unit key a spelling means for `analyte`, or why it is refused."""
    unit = rs.units.resolve(text)
    accepted = rs.units.accepted(analyte)
    if unit is None or unit not in accepted:
        return None, refusal(path, "unit", text=text, analyte=analyte, accepted=", ".join(accepted))
    return unit, None


def number_refusal(
    text: str, path: tuple[str | int, ...], decimal_comma: bool
) -> tuple[float, None] | tuple[None, Refusal]:
    """A number written in a cell or a form field, or why it is refused (`not_a_number`)."""
    value = read_number(text, decimal_comma)
    if isinstance(value, float) and math.isfinite(value):
        return value, None
    return None, not_a_number(text, path)


def value_refusal(
    value: float, canonical: float, analyte: str, unit: str, rs: Ruleset, path: tuple[str | int, ...]
) -> Refusal | None:
    """A negative value, or one beyond the plausibility limits (rules/analytes.yaml)."""
    limits = rs.plausibility[analyte]
    below, above = limits.get("refuse_below"), limits.get("refuse_above")
    bounds_here = [None if t is None else t.for_unit(unit) for t in (below, above)]
    code = next((code for code, refused in value_checks(value, canonical, *bounds_here) if refused), None)
    if code is None:
        return None
    shown = f"{format_number(value)} {rs.units.display(unit)}"
    if code == "negative":
        return refusal(path, "negative", value=shown)
    bounds = " to ".join(t.words() for t in (below, above) if t)
    return refusal(path, "implausible", value=shown, analyte=analyte, bounds=bounds)


def _medications(
    panel_in: PanelIn, ruleset: Ruleset, errors: list[Refusal]
) -> tuple[tuple[MedicationMatch, ...] | None, tuple[float | None, ...]]:
    """The entries matched to the catalogue, and when each was started (hours before this
    specimen; None when not said). An entry stopped before this specimen is not current."""
    if panel_in.medications is None:
        return None, ()
    matches, started = [], []
    now = panel_in.collected_at
    for i, entry in enumerate(panel_in.medications):
        name, code, route = (
            (entry.name, entry.rxnorm, entry.route) if isinstance(entry, MedicationIn) else (entry, None, None)
        )
        if not name.strip():
            errors.append(refusal(("medications", i), "empty_medication"))
            continue
        match = ruleset.medications.match(name.strip(), code, route.strip() if route else None)
        start, stop = (entry.start, entry.stop) if isinstance(entry, MedicationIn) else (None, None)
        if now is not None and stop is not None and stop <= now:
            # "stopped" is a not_current word of rules/medications.yaml: listed, read as not taken now
            match = ruleset.medications.match(f"{name.strip()} (stopped {stop.isoformat()})", code, route)
        matches.append(match)
        started.append((now - start).total_seconds() / 3600 if now is not None and start is not None else None)
    return tuple(matches), tuple(started)
