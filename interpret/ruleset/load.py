"""Loading `rules/`: parse every file, check every cross-reference, link thresholds.

A mistake in a rule file is reported with the file, the rule and the field, e.g.
`findings/20-patterns.yaml: rule 'refractory_hypokalemia': when.all[1].taking: unknown
medication class 'potasium_supplement'`. All mistakes are collected before raising.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from interpret.facts import QUANTITIES
from interpret.medications import CatalogueError, MedicationCatalogue
from interpret.resources import data_dir, read_yaml
from interpret.ruleset import conditions as c
from interpret.ruleset.schema import (
    AnalyteDef,
    AnalytesFile,
    DerivationsFile,
    FindingsFile,
    IdentifiersFile,
    MedicationsFile,
    ReferencesFile,
    RuleDef,
    RulesetMeta,
    RxnormFile,
    UnitsFile,
)
from interpret.severity import severity_plans
from interpret.units import UnitError, UnitTable, format_number

M = TypeVar("M", bound=BaseModel)

PLACEHOLDER = re.compile(r"\{([a-z_]+)(?:\.([a-z_]+))?\}")
QUANTITY_ATTRIBUTES = {"interval", "note", "category", "missing"}
SPECIAL_PLACEHOLDERS = {"drugs", "unrecognized_medications", "verification", "aki_stage", "aki_baseline"}


class RulesetError(Exception):
    """Every problem found in `rules/`, each naming its file, rule and field."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("invalid ruleset:\n  " + "\n  ".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class Interval:
    low: float  # canonical
    high: float
    text: str  # as written for the reported unit, e.g. "1.7–2.4 mg/dL"


@dataclass(frozen=True)
class Rule:
    definition: RuleDef
    condition: c.Node
    escalations: tuple[tuple[str, c.Node], ...]
    source: str

    @property
    def code(self) -> str:
        return self.definition.code

    def nodes(self) -> list[c.Node]:
        found = list(self.condition.walk())
        for _, node in self.escalations:
            found.extend(node.walk())
        return found


class Ruleset:
    """Everything in `rules/`, validated and indexed for fast evaluation."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._problems: list[str] = []
        self.sha256 = content_hash(directory)
        self.meta = self._read("ruleset.yaml", RulesetMeta)
        units = self._read("units.yaml", UnitsFile)
        analytes = self._read("analytes.yaml", AnalytesFile)
        self.derivations = self._read("derivations.yaml", DerivationsFile)
        meds = self._read("medications.yaml", MedicationsFile)
        self.rxnorm = self._read("rxnorm.yaml", RxnormFile)
        refs = self._read("references.yaml", ReferencesFile)
        identifiers = self._read("identifiers.yaml", IdentifiersFile)
        self._raise_if_problems()
        self.identifier_patterns = {
            kind: [re.compile(p) for p in patterns] for kind, patterns in identifiers.kinds.items()
        }
        self.references = refs.references
        self.analytes: dict[str, AnalyteDef] = analytes.analytes
        try:
            self.units = UnitTable(units.units, self.analytes)
            self.medications = MedicationCatalogue(meds, self._clinical_drugs())
        except (UnitError, CatalogueError) as exc:
            raise RulesetError([str(exc)]) from None
        self.severity_rank: dict[str, int] = {s.name: i for i, s in enumerate(self.meta.severities)}
        self.settings = {k: v.value for k, v in self.meta.settings.items()}
        self._index_analytes()
        self.display_units = {
            (name, unit): (self.units.display(unit), self.units.display(a.canonical_unit))
            for name, a in self.analytes.items()
            for unit in a.units
        }
        self._check_citations(meds)
        self._link_derivations()
        self.rules = self._read_rules()
        self._raise_if_problems()
        self.severity_plans = severity_plans(
            [(r.code, r.definition.severity, r.escalations, r.definition.at_least_as_severe_as) for r in self.rules],
            self.severity_rank,
        )

    # --- reading ------------------------------------------------------------------------

    def _read(self, name: str, model: type[M]) -> M:
        raw = self._yaml(self.directory / name)
        try:
            return model.model_validate(raw)
        except ValidationError as exc:
            for err in exc.errors():
                where = ".".join(str(p) for p in err["loc"])
                self._problems.append(f"{name}: {where}: {err['msg']}")
            return model.model_construct()

    def _yaml(self, path: Path) -> Any:
        try:
            return read_yaml(path)
        except (OSError, yaml.YAMLError) as exc:
            self._problems.append(f"{path.relative_to(self.directory)}: {exc}")
            return {}

    def _clinical_drugs(self) -> dict[str, str]:
        """rxnorm.yaml's codes, one table; a code listed by two sources is a mistake."""
        table: dict[str, str] = {}
        for source, codes in self.rxnorm.clinical_drugs.items():
            if source not in self.rxnorm.sources:
                self._problems.append(f"rxnorm.yaml: clinical_drugs.{source}: not a listed source")
            for code, name in codes.items():
                if code in table:
                    self._problems.append(f"rxnorm.yaml: clinical_drugs.{source}: code {code} listed twice")
                table[code] = name
        return table

    def _raise_if_problems(self) -> None:
        if self._problems:
            raise RulesetError(self._problems)

    # --- analytes, limits, intervals ----------------------------------------------------

    def _index_analytes(self) -> None:
        self.analyte_names: dict[str, str] = {}
        self._analyte_cache: dict[str, str | None] = {}
        self.intervals: dict[tuple[str, str | None, str], Interval] = {}
        self.critical: dict[str, tuple[c.Threshold | None, c.Threshold | None]] = {}
        self.plausibility: dict[str, dict[str, c.Threshold]] = {}
        for name, a in self.analytes.items():
            for alias in (name, a.label, *a.aliases, *a.loinc) if not a.calculated else ():
                self.analyte_names[analyte_key(alias)] = name
            where = f"analytes.yaml: {name}"
            self.critical[name] = (
                self.threshold(name, a.critical.below, where),
                self.threshold(name, a.critical.at_or_above, where),
            )
            self.plausibility[name] = {
                k: t
                for k, v in a.plausibility
                if (t := self.threshold(name, v, f"{where}.plausibility.{k}")) is not None
            }
            self._index_intervals(name, a)
            if a.interval_source and a.interval_source not in self.references:
                self._problems.append(f"{where}: unknown reference {a.interval_source!r}")

    def _index_intervals(self, name: str, a: AnalyteDef) -> None:
        for sex_key, by_unit in a.reference_interval.items():
            for unit in by_unit:
                if unit not in a.units:
                    self._problems.append(
                        f"analytes.yaml: {name}.reference_interval.{sex_key}: unit {unit!r} "
                        f"is not one of its units {a.units}"
                    )
                    return
        for sex in ("female", "male", None):
            written = a.reference_interval.get(sex or "any") or a.reference_interval.get("any")
            if not written:
                continue
            (first_unit, first), *_ = written.items()
            for unit in a.units:
                factor = self.units.factor(name, unit)
                if unit in written:
                    low, high = written[unit]
                    text = f"{format_number(low)}–{format_number(high)} {self.units.display(unit)}"
                    self.intervals[name, sex, unit] = Interval(low * factor, high * factor, text)
                else:
                    f0 = self.units.factor(name, first_unit)
                    low, high = first[0] * f0, first[1] * f0
                    text = f"{format_number(low / factor)}–{format_number(high / factor)} {self.units.display(unit)}"
                    self.intervals[name, sex, unit] = Interval(low, high, text)

    def threshold(self, analyte: str, written: dict[str, float] | None, where: str) -> Any:
        """Convert a written limit to canonical units (None stays None)."""
        if written is None:
            return None
        pairs = []
        for unit, value in written.items():
            key = self.units.resolve(unit)
            if key is None or key not in self.analytes[analyte].units:
                self._problems.append(
                    f"{where}: {unit!r} is not a unit of {analyte}; accepted: {', '.join(self.analytes[analyte].units)}"
                )
                return None
            pairs.append((key, value * self.units.factor(analyte, key)))
        names = tuple(self.units.display(key) for key, _ in pairs)
        return c.Threshold(tuple(written.items()), pairs[0][1], tuple(pairs), names)

    def analyte(self, name: str) -> str | None:
        """The analyte a name, alias or LOINC code refers to."""
        found = self._analyte_cache.get(name)
        if found is None and name not in self._analyte_cache:
            found = self.analyte_names.get(analyte_key(name))
            if len(self._analyte_cache) < 10_000:
                self._analyte_cache[name] = found
        return found

    def interval(self, analyte: str, sex: str | None, unit: str) -> Interval | None:
        return self.intervals.get((analyte, sex if sex in ("female", "male") else None, unit))

    # --- citations -----------------------------------------------------------------------

    def _check_citations(self, meds: MedicationsFile) -> None:
        for name, cls in meds.classes.items():
            self._check_refs(f"medications.yaml: classes.{name}", cls.references)
        d = self.derivations
        self._check_refs("derivations.yaml: egfr", [*d.egfr.references, *d.egfr.category_references])
        self._check_refs("derivations.yaml: corrected_calcium", d.corrected_calcium.references)
        conventional = d.corrected_calcium.conventional
        if conventional is not None:
            for analyte, unit in (("calcium", conventional.calcium_unit), ("albumin", conventional.albumin_unit)):
                if self.units.resolve(unit) not in self.analytes[analyte].units:
                    self._problems.append(
                        f"derivations.yaml: corrected_calcium.conventional: {unit!r} is not a unit of {analyte}"
                    )
        self._check_refs("derivations.yaml: corrected_sodium", d.corrected_sodium.references)
        self._check_refs("derivations.yaml: anion_gap", d.anion_gap.references)
        self._check_refs("derivations.yaml: osmolality", d.osmolality.references)
        self._check_refs("derivations.yaml: acute_kidney_injury", d.acute_kidney_injury.references)

    def _link_derivations(self) -> None:
        """The limits of derivations.yaml in canonical units, per reported unit (as a rule's)."""
        d = self.derivations
        self.aki_stage_limits = [
            (s.stage, s.ratio_at_least, self.threshold("creatinine", s.creatinine_at_least, "derivations.yaml: aki"))
            for s in d.acute_kidney_injury.stages
        ]
        self.sodium_trigger = self.threshold(
            "glucose", d.corrected_sodium.trigger_glucose, "derivations.yaml: trigger_glucose"
        )

    def _check_refs(self, where: str, keys: list[str]) -> None:
        for key in keys:
            if key not in self.references:
                self._problems.append(f"{where}: unknown reference {key!r}")

    # --- rules ---------------------------------------------------------------------------

    def _read_rules(self) -> list[Rule]:
        rules: list[Rule] = []
        seen: set[str] = set()
        for path in sorted((self.directory / "findings").glob("*.yaml")):
            source = str(path.relative_to(self.directory))
            raw = self._yaml(path)
            try:
                parsed = FindingsFile.model_validate(raw)
            except ValidationError as exc:
                for err in exc.errors():
                    loc = list(err["loc"])
                    code = _rule_code(raw, loc)
                    inside = loc[2:] if loc[:1] == ["rules"] and len(loc) > 2 else loc
                    where = ".".join(str(p) for p in inside)
                    self._problems.append(f"{source}: rule {code!r}: {where}: {err['msg']}")
                # later rules may still refer to these codes: do not report them twice
                seen.update(r.get("code", "") for r in (raw or {}).get("rules", []) if isinstance(r, dict))
                continue
            for definition in parsed.rules:
                rule = self._link_rule(definition, source, seen)
                if rule is not None:
                    rules.append(rule)
                seen.add(definition.code)
        return rules

    def _link_rule(self, d: RuleDef, source: str, earlier: set[str]) -> Rule | None:
        def problem(msg: str) -> None:
            self._problems.append(f"{source}: rule {d.code!r}: {msg}")

        if d.code in earlier:
            problem("code defined twice")
        try:
            condition = self._link(c.parse(d.when, "when"), problem)
            escalations = tuple(
                (e.to, self._link(c.parse(e.when, f"escalate[{i}].when"), problem)) for i, e in enumerate(d.escalate)
            )
        except c.ConditionError as exc:
            problem(str(exc))
            return None
        for code in d.at_least_as_severe_as:
            if code not in earlier:
                problem(f"at_least_as_severe_as: {code!r} is not a rule defined before this one")
        self._check_refs(f"{source}: rule {d.code!r}: references", d.references)
        for name in d.qualifies.quantities if d.qualifies else []:
            if name not in QUANTITIES:
                problem(f"qualifies: {name!r} is not a quantity; known: {', '.join(QUANTITIES)}")
        for field in ("message", "recommendation"):
            for name, attr in PLACEHOLDER.findall(getattr(d, field)):
                ok = (name in QUANTITIES and (not attr or attr in QUANTITY_ATTRIBUTES)) or (
                    name in SPECIAL_PLACEHOLDERS and not attr
                )
                if not ok:
                    problem(f"{field}: unknown placeholder {{{name}{'.' + attr if attr else ''}}}")
        return Rule(d, condition, escalations, source)

    def _link(self, node: c.Node, problem: Any) -> c.Node:
        """Check names against the catalogue and convert thresholds to canonical units."""
        if isinstance(node, c.All | c.Any_):
            return dataclasses.replace(node, items=tuple(self._link(i, problem) for i in node.items))
        if isinstance(node, c.Not):
            return c.Not(self._link(node.item, problem))
        if isinstance(node, c.Compare | c.Change | c.Earlier) and node.threshold is not None:
            analyte = QUANTITIES[node.quantity].analyte  # a change is in the analyte's units too
            linked = self.threshold(analyte, dict(node.threshold.written), f"when: {node.words()}")
            return dataclasses.replace(node, threshold=linked) if linked else node
        if isinstance(node, c.StartedAfter):
            for cls in node.classes:
                if cls not in self.medications.data.classes:
                    problem(f"unknown medication class {cls!r}")
            return dataclasses.replace(node, earlier=self._link(node.earlier, problem))  # type: ignore[arg-type]
        if isinstance(node, c.Taking | c.TakingCount):
            for cls in node.classes:
                if cls not in self.medications.data.classes:
                    problem(f"unknown medication class {cls!r}")
        if isinstance(node, c.SettingOn) and node.name not in self.settings:
            problem(f"unknown setting {node.name!r}")
        return node

    # --- lookups used by the engines --------------------------------------------------------

    def rule(self, code: str) -> Rule:
        return self._rules_by_code[code]

    @functools.cached_property
    def _rules_by_code(self) -> dict[str, Rule]:
        return {r.code: r for r in self.rules}

    @property
    def version(self) -> str:
        return self.meta.version

    def disclaimer(self) -> str:
        return self.meta.disclaimer.format(version=self.version, sha256=self.sha256, sha256_short=self.sha256[:12])


def analyte_key(text: str) -> str:
    """How analyte names are compared: case, spacing and punctuation ignored ("Calcium, Total")."""
    return " ".join(_NAME_WORDS.findall(text.casefold()))


_NAME_WORDS = re.compile(r"[0-9a-z+]+")


def _rule_code(raw: Any, loc: list[Any]) -> str:
    try:
        return str(raw["rules"][loc[1]]["code"])
    except (KeyError, IndexError, TypeError):
        return "?"


def content_hash(directory: Path) -> str:
    """SHA-256 over every file in the ruleset (relative path and bytes, in sorted order), but
    the record of its release (`release.RELEASED`), which names this hash."""
    digest = hashlib.sha256()
    for path in sorted(p for p in directory.rglob("*") if p.is_file() and p.name != "released.yaml"):
        digest.update(path.relative_to(directory).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


def default_rules_dir() -> Path:
    return data_dir("rules", "ruleset.yaml")


def load_ruleset(directory: Path | str | None = None) -> Ruleset:
    return Ruleset(Path(directory) if directory else default_rules_dir())


@cache
def default_ruleset() -> Ruleset:
    return load_ruleset()
