"""The names a rule may refer to, and what each one means.

This is the vocabulary shared by the rule files, the single-panel engine and the batch
(polars) engine: both engines compute the same named facts, so one rule text drives both.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class QuantityInfo:
    """A numeric fact: a measured result or a value derived from results."""

    analyte: str  # whose units, intervals and limits apply
    derived: bool
    description: str


QUANTITIES: dict[str, QuantityInfo] = {
    "potassium": QuantityInfo("potassium", False, "serum potassium"),
    "sodium": QuantityInfo("sodium", False, "serum sodium"),
    "magnesium": QuantityInfo("magnesium", False, "serum magnesium (total)"),
    "calcium": QuantityInfo("calcium", False, "serum total calcium as measured"),
    "ionized_calcium": QuantityInfo("ionized_calcium", False, "ionised (free) calcium"),
    "albumin": QuantityInfo("albumin", False, "serum albumin"),
    "glucose": QuantityInfo("glucose", False, "serum or plasma glucose"),
    "creatinine": QuantityInfo("creatinine", False, "serum creatinine"),
    "chloride": QuantityInfo("chloride", False, "serum chloride"),
    "bun": QuantityInfo("bun", False, "serum urea nitrogen (BUN), in mmol/L of urea"),
    "urea": QuantityInfo("urea", False, "serum urea"),
    "bicarbonate": QuantityInfo("bicarbonate", False, "serum bicarbonate or total CO2"),
    "phosphate": QuantityInfo("phosphate", False, "serum inorganic phosphate (phosphorus)"),
    "egfr_reported": QuantityInfo("egfr", False, "eGFR as reported by the laboratory"),
    "egfr_calculated": QuantityInfo("egfr", True, "eGFR calculated here by CKD-EPI 2021 from creatinine, age and sex"),
    "egfr": QuantityInfo("egfr", True, "eGFR used by the rules: calculated when possible, else lab-reported"),
    "calcium_assessed": QuantityInfo(
        "calcium",
        True,
        "calcium used by the rules: ionised calcium when measured, else total calcium, albumin-corrected when albumin is low",
    ),
    "anion_gap": QuantityInfo(
        "anion_gap", True, "anion gap calculated here: Na − (Cl + HCO3), albumin-corrected when albumin is given"
    ),
    "corrected_sodium": QuantityInfo("sodium", True, "glucose-corrected sodium (only when glucose is high)"),
}

# How a report names a quantity where its own name would not do (others: the name, capitalised).
LABELS: dict[str, str] = {
    "egfr": "eGFR",
    "egfr_calculated": "eGFR (calculated)",
    "egfr_reported": "eGFR (laboratory-reported)",
    "calcium_assessed": "Calcium",
    "corrected_sodium": "Glucose-corrected sodium",
    "anion_gap": "Anion gap",
}

# Inputs that are not quantities but can be present or missing.
OTHER_INPUTS: dict[str, str] = {
    "age": "the patient's age",
    "sex": "the patient's sex",
    "medications": "the medication list",
    "specimen": "the specimen notes",
}


def presence_of(name: str) -> str | None:
    """What `available: <name>` (and `missing:`) tests, for every runner: the quantity
    itself, or the input `age`, `sex`, `medications`; None for the specimen notes, which
    are always available (an unreported flag reads as "not reported"). Each runner maps
    these few names to its own representation; none decides presence on its own."""
    if name in QUANTITIES or name in ("age", "sex", "medications"):
        return name
    if name in OTHER_INPUTS:
        return None
    raise ValueError(f"{name!r} is not an input")


# Maps a panel's analyte name to the fact that carries it.
ANALYTE_FACT = {q.analyte: name for name, q in QUANTITIES.items() if not q.derived}

SPECIMEN_FLAGS = {"hemolyzed": "the specimen is reported haemolysed"}

# Every status a result can have, lowest first: the one list the models, the polars runner
# and the reports read (`models.Status` spells it for the type checker; a test compares).
STATUSES = ("critical_low", "low", "normal", "high", "critical_high")
CRITICAL_STATUSES = (STATUSES[0], STATUSES[-1])

# How the sex of the patient may be written (case-insensitive), and what each spelling means.
SEXES = {
    "female": "female",
    "f": "female",
    "male": "male",
    "m": "male",
    "other": "other",
    "x": "other",
    "unknown": "unknown",
    "u": "unknown",
}
