"""Values a clinician would compute from the panel.

The formulas are written once against a tiny set of operations (`Ops`), so the same code
computes one panel with Python floats and a million rows with polars expressions.
Published constants of the equations stay here with their citation; everything a site may
choose (factors, triggers, categories) is read from `rules/derivations.yaml`.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any, Protocol

# (comparison, limit, result) steps of `Ops.first_of`, the comparison named as in the rule
# vocabulary ("below", "at_or_above"): the first whose comparison holds wins.
Step = tuple[str, Any, str]


class Ops(Protocol):
    def where(self, condition: Any, if_true: Any, if_false: Any) -> Any: ...
    def first_of(self, value: Any, steps: list[Step], default: str) -> Any: ...
    def below(self, value: Any, limit: Any) -> Any: ...  # false where the value or the limit is absent
    def known(self, value: Any) -> Any: ...
    def at_or_above(self, value: Any, limit: Any) -> Any: ...  # false where the value is absent
    def above(self, value: Any, limit: Any) -> Any: ...  # false where the value or the limit is absent
    def minimum(self, a: Any, b: float) -> Any: ...
    def maximum(self, a: Any, b: float) -> Any: ...
    def round(self, a: Any, digits: int) -> Any: ...


# The comparisons of the rule vocabulary (conditions.OPERATORS) on floats, for every float
# evaluator (the closures, the conditions across time, `FloatOps.first_of`).
COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "below": operator.lt,
    "at_or_below": operator.le,
    "above": operator.gt,
    "at_or_above": operator.ge,
}


class FloatOps:
    @staticmethod
    def where(condition: Any, if_true: Any, if_false: Any) -> Any:
        """A branch may be a function of no arguments: evaluated only when chosen (a float
        branch may not be computable when its input is absent)."""
        chosen = if_true if condition else if_false
        return chosen() if callable(chosen) else chosen

    @staticmethod
    def below(value: Any, limit: Any) -> Any:
        return value is not None and limit is not None and value < limit

    @staticmethod
    def known(value: Any) -> Any:
        return value is not None

    @staticmethod
    def at_or_above(value: Any, limit: Any) -> Any:
        return value is not None and value >= limit

    @staticmethod
    def above(value: Any, limit: Any) -> Any:
        return value is not None and limit is not None and value > limit

    @staticmethod
    def first_of(value: Any, steps: list[Step], default: str) -> Any:
        """A conditional chain; a step whose limit is absent (None) is skipped."""
        return next((result for op, limit, result in steps if limit is not None and COMPARE[op](value, limit)), default)

    @staticmethod
    def minimum(a: Any, b: float) -> Any:
        return min(a, b)

    @staticmethod
    def maximum(a: Any, b: float) -> Any:
        return max(a, b)

    @staticmethod
    def round(a: Any, digits: int) -> Any:
        return round(a, digits)


FLOAT_OPS = FloatOps()

# Binary floating point leaves noise in sums of decimals: 2.35 + 0.02 × (40 − 30) is
# 2.5500000000000003, which would be "high" beside an inclusive upper limit of 2.55. The
# corrections are rounded to this many decimals (far below any laboratory's precision) so
# that a value that is exactly on a limit is decided as on it.
EXACT_DECIMALS = 9

# CKD-EPI 2021 creatinine equation, race-free: Inker LA et al., N Engl J Med
# 2021;385:1737-1749. eGFR = 142 × min(Scr/κ, 1)^α × max(Scr/κ, 1)^−1.200 × 0.9938^age
# × 1.012 [female]; Scr in mg/dL; κ 0.7 (F) / 0.9 (M); α −0.241 (F) / −0.302 (M).
# The equation is sex-specific: it is computed for these sexes only (the gate of every runner).
CKD_EPI_SEXES = ("female", "male")
CKD_EPI_2021 = {
    "kappa_female": 0.7,
    "kappa_male": 0.9,
    "alpha_female": -0.241,
    "alpha_male": -0.302,
    "exponent_above_kappa": -1.200,
    "multiplier": 142.0,
    "age_base": 0.9938,
    "female_factor": 1.012,
}


def calcium_is_corrected(albumin: Any, apply_below: float, ops: Ops = FLOAT_OPS) -> Any:
    """Total calcium is albumin-corrected only where albumin is known and below the
    threshold (derivations.yaml `apply_below_albumin_g_per_l`)."""
    return ops.below(albumin, apply_below)


def calcium_assessed(ionized_value: Any, ionized: Any, total: Any, ops: Ops = FLOAT_OPS) -> Any:
    """The calcium every calcium rule reads (findings.md, "More analytes"): ionised calcium
    where it is measured, else total calcium (albumin-corrected where albumin is low).
    `ionized` and `total` are what is chosen (a value, its unit, its status); a branch may
    be a function, built only when chosen."""
    return ops.where(ops.known(ionized_value), ionized, total)


def sodium_is_corrected(glucose: Any, trigger: Any, ops: Ops = FLOAT_OPS) -> Any:
    """Sodium is glucose-corrected only where glucose is known and at or above the trigger."""
    return ops.at_or_above(glucose, trigger)


def classify(
    value: Any, low: Any, high: Any, critical_below: Any, critical_at_or_above: Any, ops: Ops = FLOAT_OPS
) -> Any:
    """A result's status against its interval (ends inclusive) and critical limits
    (critical below `critical_below`, critical at or above `critical_at_or_above`), for
    every runner: a critical limit decides before the interval; an absent limit (None, or a
    null cell) decides nothing; the names are `facts.STATUSES`."""
    return ops.first_of(
        value,
        [
            ("below", critical_below, "critical_low"),
            ("at_or_above", critical_at_or_above, "critical_high"),
            ("below", low, "low"),
            ("above", high, "high"),
        ],
        "normal",
    )


def egfr_category(value: Any, categories: list[tuple[str, float]], ops: Ops = FLOAT_OPS) -> Any:
    """The KDIGO G category of an eGFR: the first of (name, at or above), highest first,
    that the value reaches; below them all, the last (rules/derivations.yaml)."""
    return ops.first_of(value, [("at_or_above", limit, name) for name, limit in categories], categories[-1][0])


def aki_stage(ratio: Any, creatinine: Any, stages: list[tuple[int, float | None, Any]], ops: Ops = FLOAT_OPS) -> Any:
    """The KDIGO 2012 stage by creatinine: the first of (stage, ratio to baseline at least,
    creatinine at least), highest first, that is reached; else 1 (derivations.yaml)."""
    stage: Any = 1
    for number, ratio_at_least, creatinine_at_least in reversed(stages):
        parts = [ratio >= ratio_at_least] if ratio_at_least is not None else []
        parts += [creatinine >= creatinine_at_least] if creatinine_at_least is not None else []
        if parts:
            reached = parts[0] | parts[1] if len(parts) == 2 else parts[0]
            stage = ops.where(reached, number, stage)
    return stage


def ckd_epi_2021(scr_mg_dl: Any, age: Any, female: Any, ops: Ops = FLOAT_OPS) -> Any:
    """eGFR in mL/min/1.73 m² from creatinine in mg/dL (unrounded)."""
    k = CKD_EPI_2021
    kappa = ops.where(female, k["kappa_female"], k["kappa_male"])
    alpha = ops.where(female, k["alpha_female"], k["alpha_male"])
    ratio = scr_mg_dl / kappa
    return (
        k["multiplier"]
        * ops.minimum(ratio, 1.0) ** alpha
        * ops.maximum(ratio, 1.0) ** k["exponent_above_kappa"]
        * k["age_base"] ** age
        * ops.where(female, k["female_factor"], 1.0)
    )


def corrected_calcium(
    calcium_mmol: Any, albumin_g_l: Any, factor: float, reference_albumin: float, ops: Ops = FLOAT_OPS
) -> Any:
    """Albumin-corrected calcium in mmol/L: Ca + factor × (reference albumin − albumin)."""
    return ops.round(calcium_mmol + factor * (reference_albumin - albumin_g_l), EXACT_DECIMALS)


def anion_gap_albumin_correction(albumin: Any, factor: float, reference: float, ops: Ops = FLOAT_OPS) -> Any:
    """factor × (reference − albumin g/L) where albumin is given, else 0 (no correction)."""
    return ops.where(ops.known(albumin), lambda: factor * (reference - albumin), 0.0)


def anion_gap(sodium: Any, chloride: Any, bicarbonate: Any, albumin_correction: Any, ops: Ops = FLOAT_OPS) -> Any:
    """Na − (Cl + HCO3) + the albumin correction (0 without albumin), all mmol/L."""
    return ops.round(sodium - (chloride + bicarbonate) + albumin_correction, EXACT_DECIMALS)


def osmolality(sodium: Any, glucose_mmol: Any, urea_mmol: Any, ops: Ops = FLOAT_OPS) -> Any:
    """Calculated serum osmolality in mOsm/kg: 2 × Na + glucose + urea, all mmol/L."""
    return ops.round(2 * sodium + glucose_mmol + urea_mmol, EXACT_DECIMALS)


def corrected_sodium(sodium: Any, glucose_mg_dl: Any, factor: float, baseline: float, ops: Ops = FLOAT_OPS) -> Any:
    """Glucose-corrected sodium: Na + factor × (glucose mg/dL − baseline) / 100."""
    return ops.round(sodium + factor * (glucose_mg_dl - baseline) / 100.0, EXACT_DECIMALS)
