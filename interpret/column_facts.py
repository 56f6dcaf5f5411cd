"""Statuses and derived values on columns, written once for every column runner.

The polars runner (`batch/columns.py`) and the SQL runner (`sql/`) both build the facts a
rule reads from the same validated columns (`q__<quantity>` canonical value, `u__` unit key,
`sex`, `age`, `lab_low__`/`lab_high__` the laboratory's own range) with this one plan, over
an operations interface (`ColumnOps`) each back-end implements: polars expressions or
sqlglot expressions. The formulas and decisions are `derive`'s, shared with the single panel.
Every name produced here is one `prepare.py` produces for a single panel (`facts.py`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from interpret import derive
from interpret.facts import ANALYTE_FACT
from interpret.ruleset import Ruleset
from interpret.ruleset.conditions import Threshold

EGFR_UNIT = "mL/min/1.73m2"


class ColumnOps(derive.Ops, Protocol):
    """What the facts plan needs of a back-end beyond `derive.Ops`. Kinds of value:
    "float", "text", "status", "bool" (a back-end may store statuses as an enum)."""

    def col(self, name: str) -> Any: ...
    def null(self, kind: str) -> Any: ...
    def text(self, value: str) -> Any: ...
    def by_key(self, key: Any, values: dict[str, float | None], default: float | None) -> Any: ...
    def cases(self, branches: list[tuple[Any, Any]], default: Any) -> Any: ...
    def coalesce(self, *values: Any) -> Any: ...
    def is_in(self, value: Any, options: list[str]) -> Any: ...
    def equals(self, value: Any, text: str) -> Any: ...
    def named(self, value: Any, name: str) -> Any: ...


def limit(ops: ColumnOps, unit: Any, threshold: Threshold | None) -> Any:
    """A written limit as an expression: the figure for each row's reported unit (rules/README)."""
    if threshold is None:
        return ops.null("float")
    return ops.by_key(unit, dict(threshold.by_unit), threshold.primary)


@dataclass
class FactSteps:
    """The facts of a set of validated columns, in two steps: the second reads the first's."""

    first: list[Any]
    second: list[Any]
    osmolality: Any | None  # shown, read by no rule


def fact_steps(rs: Ruleset, analytes: list[str], lab_ranges: set[str], ops: ColumnOps) -> FactSteps:
    """The statuses, verification flags and derived values of a file whose result columns
    are `analytes` (with the laboratory's own ranges for `lab_ranges`)."""
    plan = _Plan(rs, analytes, lab_ranges, ops)
    first = [plan.status(a) for a in analytes] + [plan.verify(a) for a in analytes]
    second: list[Any] = []
    for values, statuses in (plan.egfr(), plan.calcium(), plan.sodium(), plan.anion_gap()):
        first += values
        second += statuses
    return FactSteps(first, second, plan.osmolality())


class _Plan:
    def __init__(self, rs: Ruleset, analytes: list[str], lab_ranges: set[str], ops: ColumnOps) -> None:
        self.rs, self.analytes, self.lab_ranges, self.ops = rs, set(analytes), lab_ranges, ops

    def value(self, quantity: str) -> Any:
        """A measured quantity's column, or null where the file has no such column."""
        fact_analyte = next((a for a, f in ANALYTE_FACT.items() if f == quantity), None)
        if fact_analyte is not None and fact_analyte not in self.analytes:
            return self.ops.null("float")
        return self.ops.col(f"q__{quantity}")

    def interval(self, analyte: str, unit: Any, end: int) -> Any:
        """The default interval end (0 low, 1 high) for each row's sex and reported unit."""
        accepted = self.rs.analytes[analyte].units

        def for_sex(sex: str | None) -> Any:
            values: dict[str, float | None] = {}
            for u in accepted:
                iv = self.rs.interval(analyte, sex, u)
                values[u] = None if iv is None else (iv.low, iv.high)[end]
            return self.ops.by_key(unit, values, None)

        if set(self.rs.analytes[analyte].reference_interval) <= {"any"}:
            return for_sex(None)  # not sex-specific: one expression for every row
        sex = self.ops.col("sex")
        return self.ops.cases(
            [(self.ops.equals(sex, "female"), for_sex("female")), (self.ops.equals(sex, "male"), for_sex("male"))],
            for_sex(None),
        )

    def classify(self, analyte: str, value: Any, unit: Any, fact_for_lab: str) -> Any:
        ops = self.ops
        low, high = self.interval(analyte, unit, 0), self.interval(analyte, unit, 1)
        if analyte in self.lab_ranges:  # the laboratory's own range, where the row gives one
            lab_low, lab_high = ops.col(f"lab_low__{fact_for_lab}"), ops.col(f"lab_high__{fact_for_lab}")
            has_lab = ops.known(lab_low) | ops.known(lab_high)
            low, high = ops.where(has_lab, lab_low, low), ops.where(has_lab, lab_high, high)
        below, above = (None if t is None else limit(ops, unit, t) for t in self.rs.critical[analyte])
        return derive.classify(value, low, high, below, above, ops)

    def status(self, analyte: str) -> Any:
        fact, ops = ANALYTE_FACT[analyte], self.ops
        has_limits = bool(self.rs.analytes[analyte].reference_interval) or self.rs.critical[analyte] != (None, None)
        if not has_limits:
            return ops.named(ops.null("status"), f"s__{fact}")
        return ops.named(self.classify(analyte, ops.col(f"q__{fact}"), ops.col(f"u__{fact}"), fact), f"s__{fact}")

    def verify(self, analyte: str) -> Any:
        fact, ops = ANALYTE_FACT[analyte], self.ops
        value, unit = ops.col(f"q__{fact}"), ops.col(f"u__{fact}")
        limits = self.rs.plausibility[analyte]
        below = ops.coalesce(value < limit(ops, unit, limits.get("verify_below")), False)
        above = ops.coalesce(value > limit(ops, unit, limits.get("verify_above")), False)
        return ops.named(below | above, f"v__{fact}")

    def egfr(self) -> tuple[list[Any], list[Any]]:
        d, ops = self.rs.derivations.egfr, self.ops
        creatinine, reported = self.value("creatinine"), self.value("egfr_reported")
        age, sex = ops.col("age"), ops.col("sex")
        scr = creatinine / self.rs.units.factor("creatinine", "mg/dL")
        ok = ops.known(creatinine) & ops.at_or_above(age, d.min_age) & ops.is_in(sex, list(derive.CKD_EPI_SEXES))
        equation = derive.ckd_epi_2021(scr, age, ops.equals(sex, "female"), ops)
        calculated = ops.col("q__egfr_calculated")
        return [
            ops.named(ops.where(ops.coalesce(ok, False), equation, ops.null("float")), "q__egfr_calculated"),
            ops.named(ops.text(EGFR_UNIT), "u__egfr_calculated"),
            ops.named(ops.text(EGFR_UNIT), "u__egfr"),
        ], [
            ops.named(ops.coalesce(calculated, reported), "q__egfr"),
            ops.named(
                ops.cases(
                    [(ops.known(calculated), ops.text("calculated")), (ops.known(reported), ops.text("laboratory"))],
                    ops.null("text"),
                ),
                "egfr_source",
            ),
        ]

    def calcium(self) -> tuple[list[Any], list[Any]]:
        """The calcium the rules read (`derive.calcium_assessed`)."""
        ops = self.ops
        values, statuses = self.total_calcium()
        if "ionized_calcium" not in self.analytes:
            return values, statuses
        ionized = ops.col("q__ionized_calcium")
        if "calcium" in self.analytes:
            (total_value, total_unit), total_status = self._total_calcium_values(), self._total_status()
        else:
            total_value, total_unit, total_status = ops.null("float"), ops.null("text"), ops.null("status")
        assessed, assessed_unit = ops.col("q__calcium_assessed"), ops.col("u__calcium_assessed")
        ionized_status = self.classify("ionized_calcium", assessed, assessed_unit, "ionized_calcium")
        return [
            ops.named(derive.calcium_assessed(ionized, ionized, total_value, ops), "q__calcium_assessed"),
            ops.named(
                derive.calcium_assessed(ionized, ops.col("u__ionized_calcium"), total_unit, ops), "u__calcium_assessed"
            ),
        ], [ops.named(derive.calcium_assessed(ionized, ionized_status, total_status, ops), "s__calcium_assessed")]

    def total_calcium(self) -> tuple[list[Any], list[Any]]:
        ops = self.ops
        if "calcium" not in self.analytes:
            return [
                ops.named(ops.null("float"), "q__calcium_assessed"),
                ops.named(ops.null("text"), "u__calcium_assessed"),
                ops.named(ops.null("status"), "s__calcium_assessed"),
            ], []
        value, unit = self._total_calcium_values()
        return [ops.named(value, "q__calcium_assessed"), ops.named(unit, "u__calcium_assessed")], [
            ops.named(self._total_status(), "s__calcium_assessed")
        ]

    def _total_status(self) -> Any:
        ops = self.ops
        return self.classify("calcium", ops.col("q__calcium_assessed"), ops.col("u__calcium_assessed"), "calcium")

    def _total_calcium_values(self) -> tuple[Any, Any]:
        """Total calcium, albumin-corrected where albumin is low, in the unit it was reported in
        (the same arithmetic as prepare._corrected_calcium)."""
        d, ops = self.rs.derivations.corrected_calcium, self.ops
        calcium, albumin = ops.col("q__calcium"), self.value("albumin")
        corrected = derive.corrected_calcium(calcium, albumin, d.factor_mmol_per_g, d.reference_albumin_g_per_l, ops)
        conventional = d.conventional
        if conventional is not None:
            unit = self.rs.units.resolve(conventional.calcium_unit) or ""
            to_ca = self.rs.units.factor("calcium", unit)
            to_albumin = self.rs.units.factor("albumin", self.rs.units.resolve(conventional.albumin_unit) or "")
            written = derive.corrected_calcium(
                calcium / to_ca, albumin / to_albumin, conventional.factor, conventional.reference_albumin, ops
            )
            corrected = ops.where(ops.equals(ops.col("u__calcium"), unit), written * to_ca, corrected)
        chosen = derive.calcium_is_corrected(albumin, d.apply_below_albumin_g_per_l, ops)
        return ops.where(chosen, corrected, calcium), ops.col("u__calcium")

    def sodium(self) -> tuple[list[Any], list[Any]]:
        ops = self.ops
        if not {"sodium", "glucose"} <= self.analytes:
            return [
                ops.named(ops.null("float"), "q__corrected_sodium"),
                ops.named(ops.null("text"), "u__corrected_sodium"),
                ops.named(ops.null("status"), "s__corrected_sodium"),
            ], []
        d = self.rs.derivations.corrected_sodium
        sodium, glucose = ops.col("q__sodium"), ops.col("q__glucose")
        trigger = limit(ops, ops.col("u__glucose"), self.rs.sodium_trigger)
        mg_dl = glucose / self.rs.units.factor("glucose", "mg/dL")
        value = derive.corrected_sodium(sodium, mg_dl, d.factors[0].factor, d.baseline_glucose_mg_dl, ops)
        corrected = ops.known(sodium) & derive.sodium_is_corrected(glucose, trigger, ops)
        status = self.classify("sodium", ops.col("q__corrected_sodium"), ops.col("u__corrected_sodium"), "sodium")
        return [
            ops.named(ops.where(ops.coalesce(corrected, False), value, ops.null("float")), "q__corrected_sodium"),
            ops.named(ops.col("u__sodium"), "u__corrected_sodium"),
        ], [ops.named(status, "s__corrected_sodium")]

    def anion_gap(self) -> tuple[list[Any], list[Any]]:
        """Na − (Cl + HCO3), + the albumin correction where albumin is given (derive.anion_gap)."""
        ops = self.ops
        if not {"sodium", "chloride", "bicarbonate"} <= self.analytes:
            return [
                ops.named(ops.null("float"), "q__anion_gap"),
                ops.named(ops.null("text"), "u__anion_gap"),
            ], [ops.named(ops.null("status"), "s__anion_gap")]
        d = self.rs.derivations.anion_gap
        correction = derive.anion_gap_albumin_correction(
            self.value("albumin"), d.albumin_factor, d.reference_albumin_g_per_l, ops
        )
        value = derive.anion_gap(
            ops.col("q__sodium"), ops.col("q__chloride"), ops.col("q__bicarbonate"), correction, ops
        )
        status = self.classify("anion_gap", ops.col("q__anion_gap"), ops.col("u__anion_gap"), "anion_gap")
        return [ops.named(value, "q__anion_gap"), ops.named(ops.text("mmol/L"), "u__anion_gap")], [
            ops.named(status, "s__anion_gap")
        ]

    def osmolality(self) -> Any | None:
        """Calculated osmolality (mOsm/kg) where the file has sodium, glucose and urea or BUN."""
        ops = self.ops
        urea = [ops.col(f"q__{u}") for u in ("urea", "bun") if u in self.analytes]
        if not {"sodium", "glucose"} <= self.analytes or not urea:
            return None
        return derive.osmolality(ops.col("q__sodium"), ops.col("q__glucose"), ops.coalesce(*urea), ops)
