"""The public shapes: the input panel (JSON in) and the Interpretation (JSON out).

Input models check structure only (types, required fields, finite numbers); what needs the
ruleset (analyte names, units, plausibility) is checked in `validate.py`, which reports
errors in the same located form. Output models are plain dataclasses (see below).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field, TypeAdapter

Severity = Literal["info", "advisory", "warning", "critical"]
Status = Literal["critical_low", "low", "normal", "high", "critical_high"]


def _not_a_boolean(value: Any) -> Any:
    """`true` is not 1.0 mmol/L: JSON booleans are refused where a number belongs (pydantic's
    lax mode would read them as 1 and 0, fabricating a critical result from a slip)."""
    if isinstance(value, bool):
        raise ValueError("a number is required, not true or false")
    return value


Number = Annotated[float, BeforeValidator(_not_a_boolean)]


class InputModel(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class ReferenceRangeIn(InputModel):
    low: Number | None = Field(default=None, description="Lower limit, in the result's unit")
    high: Number | None = Field(default=None, description="Upper limit, in the result's unit")


class ResultIn(InputModel):
    analyte: str = Field(description="Analyte name (potassium, ...) or its LOINC code")
    value: Number
    unit: str = Field(description="e.g. mmol/L, mEq/L, mg/dL, umol/L, g/dL, g/L")
    reference_range: ReferenceRangeIn | None = Field(
        default=None, description="The laboratory's own interval; decides low/high"
    )


class PatientIn(InputModel):
    age: Number | None = Field(default=None, description="Years; adults only (18-120)")
    sex: str | None = Field(default=None, description="female/male (F/M); other or unknown")


class MedicationIn(InputModel):
    name: str
    rxnorm: str | None = Field(
        default=None, description="RxNorm code (RXCUI): an ingredient's, or a clinical drug's (rules/rxnorm.yaml)"
    )
    start: AwareDatetime | None = Field(default=None, description="When it was started (ISO 8601 with an offset)")
    stop: AwareDatetime | None = Field(
        default=None, description="When it was stopped; stopped before the specimen: not current"
    )
    route: str | None = Field(
        default=None,
        description='Route as written ("Ophthalmic route", "topical"): an eye, ear or skin route is no systemic drug',
    )


class SpecimenIn(InputModel):
    hemolyzed: bool | None = None


class EarlierSpecimenIn(InputModel):
    """An earlier specimen of the same patient: its results are validated like the current ones."""

    collected_at: AwareDatetime = Field(description="Collection time, ISO 8601 with an offset or Z")
    results: list[ResultIn] = Field(min_length=1)
    specimen: SpecimenIn | None = None


class PanelIn(InputModel):
    """One panel: the shape shared by the command line, the API and each batch row."""

    collected_at: AwareDatetime | None = Field(
        default=None, description="When this specimen was collected, ISO 8601 with an offset or Z"
    )
    history: list[EarlierSpecimenIn] | None = Field(
        default=None, description="Earlier specimens of the same patient, for the rules across time"
    )
    patient: PatientIn | None = None
    results: list[ResultIn] = Field(min_length=1)
    medications: list[str | MedicationIn] | None = Field(
        default=None, description="Free text as written, or {name, rxnorm}; omit if unknown"
    )
    specimen: SpecimenIn | None = None


# --- output ----------------------------------------------------------------------------
# Plain dataclasses: built on the hot path at a fraction of the cost of pydantic's
# model_construct (benchmarks/README.md), while pydantic's TypeAdapter still gives their JSON form and
# the OpenAPI schema. `to_json` / `to_dict` are the one way to serialise an Interpretation.


@dataclass(slots=True)
class IntervalOut:
    text: str
    low: float | None
    high: float | None
    unit: str
    source: Literal["laboratory", "default"]


@dataclass(slots=True)
class ResultOut:
    analyte: str
    label: str
    value: Number
    unit: str
    canonical_value: float
    canonical_unit: str
    reference_interval: IntervalOut | None
    status: Status | None
    needs_verification: bool
    # the configured critical limits, in the reported unit (critical below / at or above)
    critical_below: float | None = None
    critical_at_or_above: float | None = None


@dataclass(slots=True)
class DerivedOut:
    name: str
    label: str
    value: Number
    unit: str
    shown: str  # as the report's sentences show it: "29.5 mL/min/1.73 m²" (decided on `value`)
    formula: str
    inputs: dict[str, str]
    category: str | None = None
    category_term: str | None = None
    note: str | None = None
    status: Status | None = None
    alternatives: dict[str, float] = dataclass_field(default_factory=dict)
    references: list[str] = dataclass_field(default_factory=list)


@dataclass(slots=True)
class EvidenceOut:
    fact: str
    statement: str


@dataclass(slots=True)
class ReferenceOut:
    """A source, in the response's `references` table under its key."""

    citation: str
    url: str | None
    verified: bool


@dataclass(slots=True)
class FindingOut:
    code: str
    severity: Severity
    title: str
    message: str
    evidence: list[EvidenceOut]
    recommendation: str
    references: Annotated[
        list[str], Field(description="Keys of the sources in the response's `references` table, in citation order")
    ]
    rule: Annotated[str, Field(description="Where the rule is defined, e.g. findings/20-patterns.yaml#code")]
    logic: Annotated[str, Field(description="The rule's condition in words")]
    critical_note: str | None = None
    caveat: str | None = None  # a data-quality finding of the same panel puts this one in doubt
    # the single-result findings of this panel that this pattern combines (its rule's
    # `at_least_as_severe_as`): a report shows them inside this one, not beside it
    explains: list[str] = dataclass_field(default_factory=list)


@dataclass(slots=True)
class NotAssessedOut:
    code: str
    title: str
    missing: list[str]


@dataclass(slots=True)
class MedicationOut:
    text: str
    recognized: bool
    drugs: list[str]
    classes: list[str]
    class_labels: list[str]  # the classes' labels (rules/medications.yaml), in the same order


@dataclass(slots=True)
class RulesetOut:
    name: str
    version: str
    sha256: str


@dataclass(slots=True)
class PatientOut:
    age: float | None
    sex: str | None


@dataclass(slots=True)
class EarlierOut:
    """An earlier result of the same patient, as the rules across time read it."""

    analyte: str
    label: str
    shown: str  # "3.0 mmol/L"
    canonical_value: float
    status: Status | None
    collected_at: str  # ISO 8601, as given
    hours_before: float


@dataclass(slots=True)
class Interpretation:
    patient: PatientOut
    results: list[ResultOut]
    derived: dict[str, DerivedOut]
    findings: list[FindingOut]
    not_assessed: list[NotAssessedOut]
    medications: list[MedicationOut] | None
    specimen_hemolyzed: bool | None
    max_severity: Severity | None
    ruleset: RulesetOut
    intended_use: str
    disclaimer: str
    short_disclaimer: str  # the one line that opens a report; `disclaimer` closes it, once
    # every source the findings and derived values of this response cite, once, by key
    references: dict[str, ReferenceOut] = dataclass_field(default_factory=dict)
    collected_at: str | None = None
    earlier: list[EarlierOut] = dataclass_field(default_factory=list)  # latest first
    history_notes: list[str] = dataclass_field(default_factory=list)  # earlier specimens not used, and why


INTERPRETATION = TypeAdapter(Interpretation)


def to_json(interpretation: Interpretation, indent: int | None = None) -> str:
    return INTERPRETATION.dump_json(interpretation, indent=indent).decode()


def to_dict(interpretation: Interpretation) -> dict[str, Any]:
    return INTERPRETATION.dump_python(interpretation, mode="json")  # type: ignore[no-any-return]


class LocatedError(BaseModel):
    model_config = ConfigDict(extra="forbid")
    loc: str = Field(description='Where, as a JSON path: "results[1].unit", "patient.age"')
    code: str = Field(description="What kind of refusal (stable): implausible, unit, age, not_a_number, ...")
    msg: str


class LocatedErrors(BaseModel):
    """The 422 body: every problem found, each with its location."""

    model_config = ConfigDict(extra="forbid")
    detail: list[LocatedError]


# --- raw JSON ----------------------------------------------------------------------------


class _Object(dict[str, Any]):
    duplicate: str | None = None


def _pairs(pairs: list[tuple[str, Any]]) -> _Object:
    obj = _Object()
    for key, value in pairs:
        if key in obj and obj.duplicate is None:
            obj.duplicate = key
        obj[key] = value
    return obj


def duplicate_key(text: str) -> tuple[str, str] | None:
    """(where, key) of the first key named twice in one JSON object, or None (also for
    text that is not JSON: the app's own parser reports that). Every request body is checked:
    a first pass only compares each object's key count with its pairs' (C-level dicts), and
    only a body that has a duplicate is parsed again to say where."""
    seen_twice: list[bool] = []

    def count(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        obj = dict(pairs)
        if len(obj) != len(pairs):
            seen_twice.append(True)
        return obj

    try:
        json.loads(text, object_pairs_hook=count)
    except ValueError:
        return None
    if not seen_twice:
        return None
    doc = json.loads(text, object_pairs_hook=_pairs)
    stack: list[tuple[str, Any]] = [("", doc)]
    while stack:
        where, node = stack.pop()
        if isinstance(node, _Object):
            if node.duplicate is not None:
                return where or "(body)", node.duplicate
            stack += [(f"{where}.{k}" if where else k, v) for k, v in reversed(node.items())]
        elif isinstance(node, list):
            stack += [(f"{where}[{i}]", v) for i, v in reversed(list(enumerate(node)))]
    return None
