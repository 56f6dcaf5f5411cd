"""How an export's columns map to ours: defaults, a mapping file, `--unit`, and the guards.

`interpret batch --inspect` prints the plan this module makes before any long run: each
header, what it is taken as, and what is left unmapped. Direct identifiers stop the run
unless explicitly allowed; a result column without a unit is an error before any row is read.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from interpret.batch.read import BatchInputError
from interpret.resources import read_yaml
from interpret.ruleset import Ruleset

ROLE_ALIASES = {
    "age": ["age", "age years", "age_years", "patient age"],
    "sex": ["sex", "gender"],
    "medications": ["medications", "medication", "meds", "drugs", "medication list"],
    "hemolyzed": ["hemolyzed", "haemolysed", "hemolysis", "haemolysis", "hemolysed", "haemolyzed"],
}


class LongSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    panel_key: list[str] = Field(min_length=1, description="columns that identify one panel (specimen)")
    patient_key: str | None = None
    analyte: str
    value: str
    unit: str | None = None
    time: str | None = None
    # the laboratory's reference range of each result (MIMIC-IV `ref_range_lower`/`_upper`):
    # it decides low and high, as a FHIR referenceRange or a wide file's <analyte>_low/_high do
    low: str | None = None
    high: str | None = None
    # the laboratory's comment on each result (MIMIC-IV `comments`): where it says the specimen
    # is haemolysed ("HEMOLYSIS FALSELY ELEVATES K.."; ruleset.yaml `specimen`), so is the panel
    comment: str | None = None


LONG_ROLE_WORDS = {
    "low": "laboratory reference range, low",
    "high": "laboratory reference range, high",
    "comment": "the laboratory's comment (haemolysis said there flags the specimen)",
}
# The columns of a long export's `long:` section, besides its panel key.
LONG_ROLES = ("analyte", "value", "unit", "time", "patient_key", "low", "high", "comment")


class MedicationFileSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    patient_key: str
    name: str
    start: str
    stop: str
    rxnorm: str | None = None


class PatientFileSpec(BaseModel):
    """A patients table beside a long export (MIMIC-IV `patients`): age and sex by patient."""

    model_config = ConfigDict(extra="forbid")
    patient_key: str
    sex: str | None = None
    age: str | None = None
    # the year in which `age` was the patient's age (MIMIC-IV `anchor_year`): the age at a
    # panel is then age + (the panel's year - age_year)
    age_year: str | None = None


class HistorySpec(BaseModel):
    """A wide export's patient key and collection time: a patient's rows are each other's
    history (the rules across time). The whole file is then read before the run."""

    model_config = ConfigDict(extra="forbid")
    patient_key: str
    time: str


class MappingFile(BaseModel):
    """The optional YAML mapping file (all keys optional)."""

    model_config = ConfigDict(extra="forbid")
    format: Literal["wide", "long"] | None = None
    columns: dict[str, str] = {}  # our name (analyte, age, sex, ...) -> their header
    unit_columns: dict[str, str] = {}  # analyte -> their unit header
    units: dict[str, str] = {}  # analyte -> fixed unit for the whole file
    analytes: dict[str, str] = {}  # long format: their label or code -> our analyte
    id_column: str | None = None
    allow_identifiers: list[str] = []
    long: LongSpec | None = None
    medications_file: MedicationFileSpec | None = None
    patients_file: PatientFileSpec | None = None
    history: HistorySpec | None = None  # wide format: patient key and time
    delimiter: str | None = None

    @model_validator(mode="after")
    def _age_year_needs_time(self) -> MappingFile:
        """Checked here, once, for every runner (the batch and `interpret sql --raw`)."""
        if self.patients_file and self.patients_file.age_year and (self.long is None or self.long.time is None):
            raise ValueError("patients_file.age_year needs long.time (the age is worked out at each panel's time)")
        return self


def load_mapping(path: Path | None) -> MappingFile:
    if path is None:
        return MappingFile()
    try:
        raw = read_yaml(path) or {}
        return MappingFile.model_validate(raw)
    except (OSError, yaml.YAMLError) as exc:
        raise BatchInputError(f"{path}: {exc}") from None
    except ValidationError as exc:
        problems = "; ".join(_problem(e["loc"], e["msg"]) for e in exc.errors())
        raise BatchInputError(f"{path}: {problems}") from None


def _problem(loc: tuple[int | str, ...], message: str) -> str:
    """One mapping problem, where it is (a check of the whole file has no place)."""
    message = message.removeprefix("Value error, ")
    return f"{'.'.join(str(p) for p in loc)}: {message}" if loc else message


def _key(text: str) -> str:
    return " ".join(re.findall(r"[0-9a-z]+", text.casefold()))


def header_words(header: str) -> str:
    """A header as plain lower-case words: Unicode compatibility forms folded (full-width
    ＭＲＮ is MRN), camelCase split (PatientName, MRN1), punctuation read as spaces (D.O.B.)."""
    text = unicodedata.normalize("NFKC", header)
    text = re.sub(
        r"(?<=[a-z])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])|(?<=[0-9])(?=[A-Za-z])|(?<=[A-Za-z])(?=[0-9])", " ", text
    )
    return _key(text)


def identifier_kind(header: str, rs: Ruleset) -> str | None:
    """The kind of direct identifier a header looks like (rules/identifiers.yaml), or None."""
    words = header_words(header)
    for kind, patterns in rs.identifier_patterns.items():
        if any(p.search(words) for p in patterns):
            return kind
    return None


@dataclass
class Plan:
    """What each header is taken as. Built once, before any row is read."""

    format: Literal["wide", "long"]
    analyte_columns: dict[str, str] = field(default_factory=dict)  # analyte -> header
    unit_columns: dict[str, str] = field(default_factory=dict)  # analyte -> header
    fixed_units: dict[str, str] = field(default_factory=dict)  # analyte -> unit key
    range_columns: dict[str, tuple[str | None, str | None]] = field(default_factory=dict)
    roles: dict[str, str] = field(default_factory=dict)  # age/sex/medications/hemolyzed -> header
    id_column: str | None = None
    id_label: str | None = None  # the id column's name in the output, where it differs (long format)
    identifiers: dict[str, str] = field(default_factory=dict)  # header -> kind (allowed ones)
    unmapped: list[str] = field(default_factory=list)
    long: LongSpec | None = None
    analyte_labels: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # reported in the sidecar and summary
    history: bool = False  # panels carry their patient's earlier panels (batch/serial.py)

    def describe(self, headers: list[str]) -> list[tuple[str, str]]:
        taken: dict[str, str] = {}
        for analyte, header in self.analyte_columns.items():
            unit = self.fixed_units.get(analyte)
            taken[header] = f"{analyte} result" + (f" in {unit}" if unit else "")
        for analyte, header in self.unit_columns.items():
            taken[header] = f"{analyte} unit"
        for analyte, (low, high) in self.range_columns.items():
            for bound, end in ((low, "low"), (high, "high")):
                if bound:
                    taken[bound] = f"{analyte} laboratory reference range, {end}"
        for role, header in self.roles.items():
            taken[header] = role
        if self.long:
            for header in self.long.panel_key:
                taken.setdefault(header, "panel key")
            for role in LONG_ROLES:
                header = getattr(self.long, role)
                if header:
                    words = LONG_ROLE_WORDS.get(role, role.replace("_", " "))
                    taken.setdefault(header, f"long format: {words}")
        if self.id_column:
            taken[self.id_column] = taken.get(self.id_column, "") + " (id column, copied to output)"
        for header, kind in self.identifiers.items():
            taken.setdefault(header, f"identifier ({kind}), allowed, not copied")
        return [(h, taken.get(h, "UNMAPPED: not used")) for h in headers]


def make_plan(
    headers: list[str],
    mapping: MappingFile,
    rs: Ruleset,
    unit_options: dict[str, str],
    id_column: str | None,
    fmt: str | None,
    allow: list[str],
) -> Plan:
    plan = Plan(format=(fmt or mapping.format or ("long" if mapping.long else "wide")))  # type: ignore[arg-type]
    plan.id_column = id_column or mapping.id_column
    known = set(headers)
    problems: list[str] = []
    if plan.id_column and plan.id_column not in known:
        problems.append(f"--id-column {plan.id_column!r} is not a column; columns: {', '.join(headers)}")
    _guard_identifiers(headers, [*allow, *mapping.allow_identifiers], plan, problems, rs)
    if plan.format == "long":
        _plan_long(headers, mapping, rs, plan, problems)
    else:
        _plan_wide(headers, mapping, rs, unit_options, plan, problems)
    if problems:
        raise BatchInputError("\n".join(problems))
    plan.unmapped = [h for h, what in plan.describe(headers) if what.startswith("UNMAPPED")]
    return plan


def _guard_identifiers(headers: list[str], allowed: list[str], plan: Plan, problems: list[str], rs: Ruleset) -> None:
    for header in headers:
        kind = identifier_kind(header, rs)
        if kind is None:
            continue
        if header in allowed:
            plan.identifiers[header] = kind
        else:
            problems.append(
                f"column {header!r} looks like a direct identifier ({kind}): the input should be "
                f"anonymised. Remove it, or allow it explicitly with --allow-identifier {header!r} "
                "(it is never copied to any output)"
            )


def _plan_wide(
    headers: list[str], mapping: MappingFile, rs: Ruleset, units: dict[str, str], plan: Plan, problems: list[str]
) -> None:
    explicit = {header: ours for ours, header in mapping.columns.items()}
    for ours_name, theirs in mapping.columns.items():
        if theirs not in headers:
            problems.append(f"mapping: columns.{ours_name}: {theirs!r} is not a column of the file")
    for header in headers:
        ours = explicit.get(header)
        key = _key(header)
        if ours is None:
            ours = next((role for role, names in ROLE_ALIASES.items() if key in (_key(n) for n in names)), None)
        if ours in ROLE_ALIASES:
            plan.roles[ours] = header
            continue
        analyte = rs.analyte(ours or header)
        if analyte is not None:
            if analyte in plan.analyte_columns:
                problems.append(f"columns {plan.analyte_columns[analyte]!r} and {header!r} both hold {analyte}")
            plan.analyte_columns[analyte] = header
            continue
        for suffix, target in (
            (" unit", plan.unit_columns),
            (" units", plan.unit_columns),
            (" uom", plan.unit_columns),
        ):
            if key.endswith(suffix) and (a := rs.analyte(key[: -len(suffix)])):
                target[a] = header
                break
        else:
            for end in ("low", "high"):
                if key.endswith(f" {end}") and (a := rs.analyte(key[: -len(end) - 1])):
                    low, high = plan.range_columns.get(a, (None, None))
                    plan.range_columns[a] = (header, high) if end == "low" else (low, header)
    for analyte, header in mapping.unit_columns.items():
        if header not in headers:
            problems.append(f"mapping: unit_columns.{analyte}: {header!r} is not a column of the file")
        plan.unit_columns[analyte] = header
    for source in (mapping.units, units):
        for name, unit in source.items():
            analyte = rs.analyte(name)
            unit_key = rs.units.resolve(unit)
            if analyte is None:
                problems.append(f"unit for {name!r}: not a known analyte")
            elif unit_key is None or unit_key not in rs.analytes[analyte].units:
                problems.append(
                    f"unit for {analyte}: {unit!r} is not a unit for {analyte}; accepted: "
                    + ", ".join(rs.analytes[analyte].units)
                )
            else:
                plan.fixed_units[analyte] = unit_key
    for analyte, header in plan.analyte_columns.items():
        if analyte not in plan.unit_columns and analyte not in plan.fixed_units:
            problems.append(
                f"column {header!r} ({analyte}) has no unit: add a {analyte}_unit column, "
                f"--unit {analyte}=<unit> or units.{analyte} in the mapping file "
                f"(accepted: {', '.join(rs.analytes[analyte].units)})"
            )
    if not plan.analyte_columns:
        problems.append("no result column recognised: name them as analytes (potassium, K, ...) or map them")


def _plan_long(headers: list[str], mapping: MappingFile, rs: Ruleset, plan: Plan, problems: list[str]) -> None:
    if mapping.long is None:
        problems.append("long format needs a mapping file with a `long:` section (panel_key, analyte, value, ...)")
        return
    plan.long = mapping.long
    for role in LONG_ROLES:
        header = getattr(mapping.long, role)
        if header and header not in headers:
            problems.append(f"mapping: long.{role}: {header!r} is not a column of the file")
    for header in mapping.long.panel_key:
        if header not in headers:
            problems.append(f"mapping: long.panel_key: {header!r} is not a column of the file")
    for ours, header in mapping.columns.items():
        if ours in ROLE_ALIASES and header in headers:
            plan.roles[ours] = header
    for label, analyte in mapping.analytes.items():
        found = rs.analyte(analyte)
        if found is None:
            problems.append(f"mapping: analytes.{label}: {analyte!r} is not a known analyte")
        else:
            plan.analyte_labels[label] = found
    plan.fixed_units = {a: k for a, u in mapping.units.items() if (k := rs.units.resolve(u))}
    if mapping.long.unit is None and not plan.fixed_units:
        problems.append("long format: map a unit column (long.unit) or give units per analyte")


def describe_plan(plan: Plan, headers: list[str]) -> str:
    width = max((len(h) for h in headers), default=10)
    lines = [f"format: {plan.format}"]
    lines += [f"  {h:<{width}}  -> {what}" for h, what in plan.describe(headers)]
    if plan.unmapped:
        lines.append("unmapped (reported, not used): " + ", ".join(plan.unmapped))
    return "\n".join(lines)
