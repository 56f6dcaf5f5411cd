"""The public shapes: the input panel (JSON in) and the Interpretation (JSON out).

Input models check structure only (types, required fields, finite numbers); what needs the
ruleset (analyte names, units, plausibility) is checked in `validate.py`, which reports
errors in the same located form. Output models are built without re-validation on the hot
path (`model_construct`), and double as the OpenAPI schema.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Severity = Literal["info", "advisory", "warning", "critical"]
Status = Literal["critical_low", "low", "normal", "high", "critical_high"]


class InputModel(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class ReferenceRangeIn(InputModel):
    low: float | None = Field(default=None, description="Lower limit, in the result's unit")
    high: float | None = Field(default=None, description="Upper limit, in the result's unit")


class ResultIn(InputModel):
    analyte: str = Field(description="Analyte name (potassium, ...) or its LOINC code")
    value: float
    unit: str = Field(description="e.g. mmol/L, mEq/L, mg/dL, umol/L, g/dL, g/L")
    reference_range: ReferenceRangeIn | None = Field(
        default=None, description="The laboratory's own interval; decides low/high"
    )


class PatientIn(InputModel):
    age: float | None = Field(default=None, description="Years; adults only (18-120)")
    sex: str | None = Field(default=None, description="female/male (F/M); other or unknown")


class MedicationIn(InputModel):
    name: str
    rxnorm: str | None = Field(default=None, description="RxNorm ingredient code (RXCUI)")


class SpecimenIn(InputModel):
    hemolyzed: bool | None = None


class PanelIn(InputModel):
    """One panel: the shape shared by the command line, the API and each batch row."""

    patient: PatientIn | None = None
    results: list[ResultIn] = Field(min_length=1)
    medications: list[str | MedicationIn] | None = Field(
        default=None, description="Free text as written, or {name, rxnorm}; omit if unknown"
    )
    specimen: SpecimenIn | None = None


# --- output ----------------------------------------------------------------------------


class OutputModel(BaseModel):
    model_config = ConfigDict(extra="forbid")


class IntervalOut(OutputModel):
    text: str
    low: float | None
    high: float | None
    unit: str
    source: Literal["laboratory", "default"]


class ResultOut(OutputModel):
    analyte: str
    label: str
    value: float
    unit: str
    canonical_value: float
    canonical_unit: str
    reference_interval: IntervalOut | None
    status: Status | None
    needs_verification: bool


class DerivedOut(OutputModel):
    name: str
    label: str
    value: float
    unit: str
    formula: str
    inputs: dict[str, str]
    category: str | None = None
    category_term: str | None = None
    note: str | None = None
    status: Status | None = None
    alternatives: dict[str, float] = {}
    references: list[str] = []


class EvidenceOut(OutputModel):
    fact: str
    statement: str


class ReferenceOut(OutputModel):
    key: str
    citation: str
    url: str | None
    verified: bool


class FindingOut(OutputModel):
    code: str
    severity: Severity
    title: str
    message: str
    evidence: list[EvidenceOut]
    recommendation: str
    references: list[ReferenceOut]
    rule: str = Field(description="Where the rule is defined, e.g. findings/20-patterns.yaml")
    logic: str = Field(description="The rule's condition in words")
    critical_note: str | None = None


class NotAssessedOut(OutputModel):
    code: str
    title: str
    missing: list[str]


class MedicationOut(OutputModel):
    text: str
    recognized: bool
    drugs: list[str]
    classes: list[str]


class RulesetOut(OutputModel):
    name: str
    version: str
    sha256: str


class PatientOut(OutputModel):
    age: float | None
    sex: str | None


class Interpretation(OutputModel):
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


class LocatedError(OutputModel):
    loc: str = Field(description='Where, as a JSON path: "results[1].unit", "patient.age"')
    msg: str


class LocatedErrors(OutputModel):
    """The 422 body: every problem found, each with its location."""

    detail: list[LocatedError]
