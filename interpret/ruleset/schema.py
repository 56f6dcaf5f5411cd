"""Pydantic models of the files in `rules/`.

They forbid unknown keys, so a misspelt key in a rule file is an error rather than a
silently ignored setting. Cross-references (a rule naming an analyte, a drug naming a class)
are checked afterwards in `load.py`, where the file and rule can be named.
"""

from __future__ import annotations

import functools
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

SeverityName = Literal["info", "advisory", "warning", "critical"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SeverityTier(Strict):
    name: SeverityName
    cds_indicator: Literal["info", "warning", "critical"]


class Setting(Strict):
    value: bool
    description: str


class AgeLimits(Strict):
    min: float
    max: float


class Coding(Strict):
    system: str
    code: str


class SpecimenWords(Strict):
    """How haemolysis is written (ruleset.yaml `specimen`): one reading for every runner."""

    hemolyzed_words: list[str] = Field(min_length=1)
    yes_words: list[str] = Field(min_length=1)
    no_words: list[str] = Field(min_length=1)
    hemolysis_codes: list[Coding] = []
    # free text is read for haemolysis only where the ruleset gives these (older rulesets do not)
    note_stems: list[str] = []
    note_negations: list[str] = []
    note_measurements: list[str] = []

    def note_says_hemolyzed(self, text: str) -> bool:
        """Whether free text says the specimen is haemolysed, negation handled (ruleset.yaml)."""
        if not self.note_stems:
            return False
        for found in self._stem.finditer(text):
            if found.group(1) or self._negated.search(text[: found.start()]):
                continue
            if self._measurement.match(text, found.end()):
                continue
            return True
        return False

    @functools.cached_property
    def _stem(self) -> re.Pattern[str]:
        stems = "|".join(sorted((re.escape(s) for s in self.note_stems), key=len, reverse=True))
        return re.compile(rf"\b(non-?|un)?(?:{stems})\w*", re.IGNORECASE)

    @functools.cached_property
    def _measurement(self) -> re.Pattern[str]:
        words = "|".join(re.escape(w) for w in self.note_measurements) or r"(?!)"
        return re.compile(rf"[\s:-]*(?:{words})\b", re.IGNORECASE)

    @functools.cached_property
    def _negated(self) -> re.Pattern[str]:
        words = "|".join(re.escape(w).replace(r"\ ", r"\s+") for w in self.note_negations) or r"(?!)"
        return re.compile(rf"\b(?:{words})\b[\s\w,-]{{0,20}}$", re.IGNORECASE)

    def is_hemolysis(self, text: str) -> bool:
        """A cell that says haemolysed instead of giving a value."""
        return text.strip().casefold() in self.hemolyzed_words

    def yes_no(self, text: str) -> bool | None:
        """A specimen yes/no cell: None when it is neither (blank is no)."""
        word = text.strip().casefold()
        if word in self.yes_words or word in self.hemolyzed_words:
            return True
        return False if word in self.no_words or not word else None


class RulesetMeta(Strict):
    name: str
    version: str
    title: str
    intended_use: str
    short_disclaimer: str
    disclaimer: str
    critical_wording: str
    patient_age: AgeLimits
    specimen: SpecimenWords
    severities: list[SeverityTier]
    settings: dict[str, Setting] = {}


class UnitDef(Strict):
    dimension: Literal["substance", "charge", "mass", "rate"]
    scale: float = Field(gt=0)
    display: str | None = None
    aliases: list[str] = []


class UnitsFile(Strict):
    units: dict[str, UnitDef]


def parse_limit(value: Any) -> dict[str, float]:
    """A limit written as "3.0 mmol/L" or as {unit: number, ...} (first entry is primary)."""
    if isinstance(value, str):
        number, _, unit = value.strip().partition(" ")
        if not unit:
            raise ValueError(f"{value!r} needs a number and a unit, e.g. '3.0 mmol/L'")
        return {unit.strip(): float(number)}
    if isinstance(value, dict) and value:
        return {str(k): float(v) for k, v in value.items()}
    raise ValueError(f"{value!r} is not a limit: write '3.0 mmol/L' or {{mmol/L: 3.0}}")


Limit = dict[str, float]


class Critical(Strict):
    below: Limit | None = None
    at_or_above: Limit | None = None

    @field_validator("below", "at_or_above", mode="before")
    @classmethod
    def _limit(cls, v: Any) -> Limit | None:
        return None if v is None else parse_limit(v)


class Plausibility(Strict):
    refuse_below: Limit | None = None
    refuse_above: Limit | None = None
    verify_below: Limit | None = None
    verify_above: Limit | None = None

    @field_validator("*", mode="before")
    @classmethod
    def _limit(cls, v: Any) -> Limit | None:
        return None if v is None else parse_limit(v)


class AnalyteDef(Strict):
    label: str
    aliases: list[str] = []
    loinc: dict[str, str] = {}
    canonical_unit: str
    molar_mass: float | None = Field(default=None, gt=0)
    valence: int | None = Field(default=None, gt=0)
    units: list[str]
    # sex ("female", "male", "any") -> unit -> [low, high]
    reference_interval: dict[Literal["female", "male", "any"], dict[str, tuple[float, float]]] = {}
    interval_source: str | None = None
    critical: Critical = Critical()
    plausibility: Plausibility = Plausibility()
    # A censored cell in a batch file ("<2.0", ">60"): `refuse` the row, or read the result as
    # `not_measured` (with a note) and interpret the rest of the row.
    censored: Literal["refuse", "not_measured"] = "refuse"
    # A value this service calculates from others (the anion gap): its interval and limits are
    # here, but it is never accepted as an input result.
    calculated: bool = False


class AnalytesFile(Strict):
    analytes: dict[str, AnalyteDef]


class EgfrCategory(Strict):
    name: str
    at_or_above: float
    term: str


class EgfrDef(Strict):
    formula: str
    references: list[str]
    min_age: int
    categories: list[EgfrCategory]
    category_references: list[str]


class ConventionalCorrection(Strict):
    """The correction as written for results in another unit (mg/dL: 0.8 × (4.0 − albumin g/dL))."""

    calcium_unit: str
    albumin_unit: str
    factor: float
    reference_albumin: float


class CorrectedCalciumDef(Strict):
    formula: str
    factor_mmol_per_g: float
    reference_albumin_g_per_l: float
    apply_below_albumin_g_per_l: float
    conventional: ConventionalCorrection | None = None
    caveat: str
    references: list[str]


class SodiumFactor(Strict):
    name: str
    factor: float
    reference: str


class CorrectedSodiumDef(Strict):
    formula: str
    baseline_glucose_mg_dl: float
    trigger_glucose: Limit
    factors: list[SodiumFactor] = Field(min_length=1)
    references: list[str]

    @field_validator("trigger_glucose", mode="before")
    @classmethod
    def _limit(cls, v: Any) -> Limit:
        return parse_limit(v)


class AnionGapDef(Strict):
    formula: str
    albumin_factor: float  # mmol/L per g/L below the reference albumin
    reference_albumin_g_per_l: float
    references: list[str]


class OsmolalityDef(Strict):
    formula: str
    references: list[str]


class AkiStage(Strict):
    stage: int
    ratio_at_least: float | None = None
    creatinine_at_least: Limit | None = None

    @field_validator("creatinine_at_least", mode="before")
    @classmethod
    def _limit(cls, v: Any) -> Limit | None:
        return None if v is None else parse_limit(v)


class AkiDef(Strict):
    """KDIGO 2012 staging by creatinine: the first stage reached, highest first; else 1."""

    baseline_within_hours: float = Field(gt=0)
    stages: list[AkiStage]
    references: list[str]


class DerivationsFile(Strict):
    acute_kidney_injury: AkiDef
    egfr: EgfrDef
    corrected_calcium: CorrectedCalciumDef
    corrected_sodium: CorrectedSodiumDef
    anion_gap: AnionGapDef
    osmolality: OsmolalityDef


class MedicationClass(Strict):
    label: str
    effects: str
    references: list[str]


class DrugDef(Strict):
    name: str
    classes: list[str] = []
    ingredients: list[str] = []
    brands: list[str] = []
    synonyms: list[str] = []
    rxnorm: list[str] = []


class LocalForms(Strict):
    """Words that name a preparation applied to the eye, ear or skin: a drug matched in such
    an entry takes the class `becomes` instead of its own (systemic) classes."""

    becomes: str
    words: list[str] = Field(min_length=1)


class MedicationsFile(Strict):
    salt_words: list[str]
    local_forms: LocalForms | None = None
    not_current: LocalForms | None = None  # words that say an entry is not taken now
    classes: dict[str, MedicationClass]
    drugs: list[DrugDef]


class CodeSource(Strict):
    """Where a table of codes was read from, so that a reviewer can check it."""

    title: str
    repository: str
    paths: str
    commit: str
    licence: str
    codes: int


class RxnormFile(Strict):
    """RxNorm clinical-drug codes with their RxNorm names (rxnorm.yaml, generated by
    scripts/rxnorm_table.py): a code is read as its name, by the catalogue's name matching."""

    sources: dict[str, CodeSource]
    ambiguous_codes: list[str] = []
    drugs_without_codes: list[str] = []
    clinical_drugs: dict[str, dict[str, str]]


class Reference(Strict):
    citation: str
    url: str | None = None
    verified: bool


class IdentifiersFile(Strict):
    """Header patterns of direct identifiers (identifiers.yaml), by kind."""

    kinds: dict[str, list[str]] = Field(min_length=1)

    @field_validator("kinds")
    @classmethod
    def _compiles(cls, kinds: dict[str, list[str]]) -> dict[str, list[str]]:
        for kind, patterns in kinds.items():
            for pattern in patterns:
                try:
                    re.compile(pattern)
                except re.error as exc:
                    raise ValueError(f"{kind}: {pattern!r} is not a regular expression ({exc})") from None
        return kinds


class ReferencesFile(Strict):
    references: dict[str, Reference]


class Escalation(Strict):
    to: SeverityName
    when: Any


class ExampleCase(Strict):
    panel: dict[str, Any]
    severity: SeverityName | None = None


class Examples(Strict):
    fires: list[ExampleCase] = Field(min_length=1)
    silent: list[ExampleCase] = Field(min_length=1)


class OrderSuggestion(Strict):
    """A test the clinician may order from the card in one click (CDS Hooks `create` action
    of a draft ServiceRequest): decision support proposes, the clinician decides."""

    label: str = Field(max_length=80)
    loinc: str = Field(pattern=r"^\d{1,7}-\d$")
    display: str


class Qualifies(Strict):
    """A data-quality finding that puts other findings in doubt: shown above them, and each
    finding that reads one of these quantities carries the note (possible EDTA contamination
    of the sample: the low calcium and high potassium findings may be artefacts)."""

    quantities: list[str] = Field(min_length=1)
    note: str


class RuleDef(Strict):
    code: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    title: str
    when: Any
    severity: SeverityName
    escalate: list[Escalation] = []
    at_least_as_severe_as: list[str] = []
    message: str
    recommendation: str
    references: list[str] = Field(min_length=1)
    order_suggestion: OrderSuggestion | None = None
    qualifies: Qualifies | None = None
    examples: Examples


class FindingsFile(Strict):
    rules: list[RuleDef]
