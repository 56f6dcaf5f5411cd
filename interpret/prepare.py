"""The facts of one panel: each result's status, the derived values, medication classes.

These are the named facts that rule conditions refer to (`interpret/facts.py` lists the
names). The batch engine computes the same facts column-wise from the same `rules/` data.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from interpret import derive
from interpret.facts import ANALYTE_FACT, LABELS
from interpret.ruleset.conditions import Threshold
from interpret.ruleset.load import Interval, Ruleset
from interpret.units import format_beside, format_number
from interpret.validate import Panel, Result


@dataclass(slots=True)
class Quantity:
    name: str
    value: float  # canonical unit
    unit: str  # the unit it was reported in (decides which written limit applies)
    reported: float  # the value in `unit`
    units: tuple[str, str]  # display names of `unit` and of the canonical unit
    status: str | None = None
    interval: Interval | None = None
    interval_source: str | None = None  # "laboratory" or "default"
    verify: str | None = None  # why it needs verification, if it does
    note: str | None = None
    category: str | None = None
    _shown: str | None = None

    @property
    def shown(self) -> str:
        """As a clinician reads it: "1.3 mg/dL (0.535 mmol/L)"; formatted once, when needed."""
        if self._shown is None:
            self._shown = self.show()
        return self._shown

    def show(self, *limits: float) -> str:
        """The reported number with the decimals it takes to stand on its true side of the
        interval's ends and of `limits` (canonical units), as a statement sets it beside them."""
        ends = [*limits, *((self.interval.low, self.interval.high) if self.interval else ())]
        to_reported = self.reported / self.value if self.value else 1.0
        text = f"{format_beside(self.reported, [end * to_reported for end in ends])} {self.units[0]}"
        if self.units[0] != self.units[1]:
            text += f" ({format_number(self.value)} {self.units[1]})"
        return text


@dataclass(slots=True)
class Facts:
    quantities: dict[str, Quantity]
    missing_reason: dict[str, str]
    classes: dict[str, list[str]] | None  # class -> medication entries; None = no list given
    unrecognized: list[str]
    hemolyzed: bool
    age: float | None
    sex: str | None
    settings: dict[str, bool]
    derived: dict[str, dict[str, Any]] = field(default_factory=dict)
    wording: dict[str, str] = field(default_factory=dict)  # report sentences, made once per panel
    # Earlier specimens, latest first: (hours before this one, their measured quantities);
    # None when no usable history was given (the rules across time are then not assessed).
    history: list[tuple[float, dict[str, Quantity]]] | None = None
    # class -> hours before this specimen each of its listed drugs was started (None: not said)
    started: dict[str, list[float | None]] = field(default_factory=dict)
    aki: dict[str, str] = field(default_factory=dict)  # KDIGO stage and baseline, when there is one

    def earlier(self, name: str, within_hours: float) -> list[tuple[float, Quantity]]:
        """The earlier values of a quantity inside a window (hours before this specimen)."""
        return [(h, q) for h, found in self.history or () if h <= within_hours and (q := found.get(name)) is not None]


def classify(
    value: float,
    unit: str,
    low: float | None,
    high: float | None,
    critical: tuple[Threshold | None, Threshold | None],
) -> str:
    """The status of one value (`derive.classify`, with the critical limits for its unit)."""
    below, at_or_above = (None if t is None else t.for_unit(unit) for t in critical)
    status: str = derive.classify(value, low, high, below, at_or_above)
    return status


def display_units(analyte: str, unit: str, rs: Ruleset) -> tuple[str, str]:
    return rs.display_units[analyte, unit]


def build_facts(panel: Panel, rs: Ruleset) -> Facts:
    quantities: dict[str, Quantity] = {}
    for analyte, r in panel.results.items():
        quantities[ANALYTE_FACT[analyte]] = _measured(r.analyte, r, panel.sex, rs)
    facts = Facts(
        quantities=quantities,
        missing_reason={},
        classes=None,
        unrecognized=[],
        hemolyzed=bool(panel.hemolyzed),
        age=panel.age,
        sex=panel.sex if panel.sex != "unknown" else None,
        settings=rs.settings,
    )
    _medications(panel, facts)
    _history(panel, facts, rs)
    _egfr(facts, rs)
    _calcium(panel, facts, rs)
    _sodium(panel, facts, rs)
    _anion_gap(panel, facts, rs)
    _osmolality(facts, rs)
    return facts


def _measured(analyte: str, r: Result, sex: str | None, rs: Ruleset) -> Quantity:
    q = Quantity(analyte, r.canonical, r.unit, r.value, display_units(analyte, r.unit, rs))
    _set_status(q, analyte, sex, rs, r.lab_low, r.lab_high)
    canonical, unit = r.canonical, r.unit
    limits = rs.plausibility[analyte]
    below, above = limits.get("verify_below"), limits.get("verify_above")
    if below is not None and canonical < below.for_unit(unit):
        q.verify = f"{analyte} {q.shown} is below the verification limit {below.words()}"
    elif above is not None and canonical > above.for_unit(unit):
        q.verify = f"{analyte} {q.shown} is above the verification limit {above.words()}"
    return q


def _set_status(
    q: Quantity,
    analyte: str,
    sex: str | None,
    rs: Ruleset,
    lab_low: float | None = None,
    lab_high: float | None = None,
) -> None:
    interval = rs.interval(analyte, sex, q.unit)
    if lab_low is not None or lab_high is not None:
        factor = rs.units.factor(analyte, q.unit)
        ends = ["…" if v is None else format_number(v / factor) for v in (lab_low, lab_high)]
        text = f"{ends[0]}–{ends[1]} {rs.units.display(q.unit)}"
        q.interval_source = "laboratory"
        q.interval = Interval(
            lab_low if lab_low is not None else float("-inf"),
            lab_high if lab_high is not None else float("inf"),
            text,
        )
    elif interval is not None:
        q.interval, q.interval_source = interval, "default"
    if q.interval is not None or rs.critical[analyte] != (None, None):
        low = q.interval.low if q.interval else None
        high = q.interval.high if q.interval else None
        q.status = classify(q.value, q.unit, low, high, rs.critical[analyte])


def _medications(panel: Panel, facts: Facts) -> None:
    if panel.medications is None:
        return
    classes: dict[str, list[str]] = {}
    for i, match in enumerate(panel.medications):
        if not match.recognized:
            facts.unrecognized.append(match.text)
        started = panel.started[i] if i < len(panel.started) else None
        for cls in match.classes:
            classes.setdefault(cls, []).append(match.text)
            facts.started.setdefault(cls, []).append(started)
    facts.classes = classes


def _history(panel: Panel, facts: Facts, rs: Ruleset) -> None:
    """Each earlier specimen's results as quantities, with their statuses as at that time
    (the same intervals and limits as the current results)."""
    if panel.collected_at is None or not panel.history:
        facts.missing_reason["history"] = (
            "; ".join(panel.history_notes) if panel.history_notes else "no earlier results given (history)"
        )
        return
    facts.history = [
        (e.hours_before, {ANALYTE_FACT[a]: _measured(a, r, panel.sex, rs) for a, r in e.results.items()})
        for e in panel.history
    ]
    _aki_stage(facts, rs)


def _aki_stage(facts: Facts, rs: Ruleset) -> None:
    """The KDIGO stage and baseline the acute-kidney-injury message names (derivations.yaml):
    against the lowest creatinine within the baseline window; stage 1 unless a higher one is
    reached. Worked out whenever there is a baseline; the rule decides whether it applies."""
    now = facts.quantities.get("creatinine")
    window = rs.derivations.acute_kidney_injury.baseline_within_hours
    earlier = facts.earlier("creatinine", window)
    if now is None or not earlier:
        return
    hours, baseline = min(earlier, key=lambda hq: hq[1].value)
    ratio = now.value / baseline.value if baseline.value > 0 else 0.0
    limits = [(s, r, None if c is None else c.for_unit(now.unit)) for s, r, c in rs.aki_stage_limits]
    stage = derive.aki_stage(round(ratio, derive.EXACT_DECIMALS), now.value, limits)
    facts.aki = {
        "stage": str(stage),
        "baseline": f"lowest creatinine of the prior {format_number(window)} h, {baseline.shown}, "
        f"{format_number(round(hours, 1))} h before; now {format_number(round(ratio, 2))} × that",
    }


def _egfr(facts: Facts, rs: Ruleset) -> None:
    d = rs.derivations.egfr
    unit = "mL/min/1.73m2"
    shown_unit = display_units("egfr", unit, rs)[0]
    creatinine = facts.quantities.get("creatinine")
    missing = []
    if creatinine is None:
        missing.append("no creatinine result")
    if facts.age is None:
        missing.append("age not given")
    elif facts.age < d.min_age:
        missing.append(f"age under {d.min_age}")
    if facts.sex is None:
        missing.append("sex not given")
    elif facts.sex not in derive.CKD_EPI_SEXES:
        missing.append("sex is neither female nor male (the equation is sex-specific)")
    if missing or creatinine is None or facts.age is None:
        facts.missing_reason["egfr_calculated"] = "; ".join(missing)
    else:
        scr_mg_dl = creatinine.value / rs.units.factor("creatinine", "mg/dL")
        value = derive.ckd_epi_2021(scr_mg_dl, facts.age, facts.sex == "female")
        category = egfr_category(value, rs)
        q = Quantity(
            "egfr_calculated",
            value,
            unit,
            egfr_shown(value, rs),
            display_units("egfr", unit, rs),
            note=f"{d.formula}, category {category[0]}",
            category=category[0],
        )
        facts.quantities["egfr_calculated"] = q
        facts.derived["egfr"] = {
            "label": LABELS["egfr"],
            "value": value,
            "unit": shown_unit,
            "shown": q.shown,
            "formula": d.formula,
            "inputs": {
                "creatinine": creatinine,
                "age": facts.age,
                "sex": facts.sex,
            },
            "category": category[0],
            "category_term": category[1],
            "references": [*d.references, *d.category_references],
        }
    # the rules' eGFR: calculated when possible, else the laboratory's
    calculated, reported = facts.quantities.get("egfr_calculated"), facts.quantities.get("egfr_reported")
    if calculated is not None:
        facts.quantities["egfr"] = calculated
    elif reported is not None:
        cat = egfr_category(reported.value, rs)
        reported.category = cat[0]
        reported.note = f"laboratory-reported, category {cat[0]}"
        facts.quantities["egfr"] = reported
        facts.derived["egfr"] = {
            "label": LABELS["egfr_reported"],
            "value": reported.value,
            "unit": shown_unit,
            "shown": reported.shown,
            "formula": "as reported by the laboratory (equation not stated)",
            "inputs": {},
            "category": cat[0],
            "category_term": cat[1],
            "references": list(d.category_references),
        }
    else:
        facts.missing_reason["egfr"] = facts.missing_reason["egfr_calculated"]


def egfr_shown(value: float, rs: Ruleset) -> float:
    """eGFR as laboratories report it, a whole number, unless that number would fall in another
    category than the value decided on (29.6 shows as 29.6, not "30": G4 and below 30, as the
    rules say). Categories and rules use the unrounded value (clinical-reference.md §3.2)."""
    whole = float(round(value))
    if egfr_category(whole, rs) == egfr_category(value, rs):
        return whole
    return math.floor(value * 10) / 10  # only rounding up can cross an "at or above" boundary


def egfr_category(value: float, rs: Ruleset) -> tuple[str, str]:
    """(name, term) of the eGFR's category (`derive.egfr_category`)."""
    categories = rs.derivations.egfr.categories
    name = derive.egfr_category(value, [(c.name, c.at_or_above) for c in categories])
    return name, next(c.term for c in categories if c.name == name)


def _calcium(panel: Panel, facts: Facts, rs: Ruleset) -> None:
    _total_calcium(panel, facts, rs)
    ionized = panel.results.get("ionized_calcium")

    def measured() -> Quantity:
        q = _measured("ionized_calcium", ionized, panel.sex, rs)  # type: ignore[arg-type]
        q.name, q.note = "calcium_assessed", "ionised calcium, preferred to total calcium where measured"
        return q

    # the corrected total stays in the derived values for comparison
    chosen = derive.calcium_assessed(ionized, measured, facts.quantities.get("calcium_assessed"))
    if chosen is not None:
        facts.quantities["calcium_assessed"] = chosen
        facts.missing_reason.pop("calcium_assessed", None)


def _total_calcium(panel: Panel, facts: Facts, rs: Ruleset) -> None:
    measured = panel.results.get("calcium")
    if measured is None:
        facts.missing_reason["calcium_assessed"] = "not measured"
        return
    d = rs.derivations.corrected_calcium
    albumin = facts.quantities.get("albumin")
    value, note = measured.canonical, "total calcium as measured; no albumin result"
    corrected = derive.calcium_is_corrected(albumin.value if albumin else None, d.apply_below_albumin_g_per_l)
    if albumin is not None and not corrected:
        note = f"total calcium as measured; albumin {albumin.shown} is not low"
    elif albumin is not None:
        value, formula = _corrected_calcium(measured.canonical, measured.unit, albumin.value, rs)
        note = f"albumin-corrected for albumin {albumin.shown}"
    factor = rs.units.factor("calcium", measured.unit)
    q = Quantity(
        "calcium_assessed",
        value,
        measured.unit,
        value / factor,
        display_units("calcium", measured.unit, rs),
        note=note,
    )
    _set_status(q, "calcium", panel.sex, rs, measured.lab_low, measured.lab_high)
    facts.quantities["calcium_assessed"] = q
    if albumin is not None and corrected:
        facts.derived["corrected_calcium"] = {
            "label": "Albumin-corrected calcium",
            "value": value,
            "unit": "mmol/L",
            "shown": q.shown,
            "formula": f"{d.formula}: {formula}",
            "inputs": {"calcium": facts.quantities["calcium"], "albumin": albumin},
            "status": q.status,
            "note": d.caveat,
            "references": list(d.references),
        }


def _corrected_calcium(calcium: float, unit: str, albumin: float, rs: Ruleset) -> tuple[float, str]:
    """In mmol/L, computed in the form written for the unit the calcium was reported in
    (rules/derivations.yaml); the batch does the same arithmetic (batch/columns.py)."""
    d = rs.derivations.corrected_calcium
    conventional = d.conventional
    if conventional is not None and unit == rs.units.resolve(conventional.calcium_unit):
        to_ca = rs.units.factor("calcium", unit)
        to_albumin = rs.units.factor("albumin", rs.units.resolve(conventional.albumin_unit) or "")
        reported = derive.corrected_calcium(
            calcium / to_ca, albumin / to_albumin, conventional.factor, conventional.reference_albumin
        )
        formula = (
            f"Ca + {conventional.factor:g} × ({conventional.reference_albumin:g} − albumin {conventional.albumin_unit}),"
            f" calcium in {conventional.calcium_unit}"
        )
        return reported * to_ca, formula
    value = derive.corrected_calcium(calcium, albumin, d.factor_mmol_per_g, d.reference_albumin_g_per_l)
    return value, f"Ca + {d.factor_mmol_per_g:g} × ({d.reference_albumin_g_per_l:g} − albumin g/L)"


def _anion_gap(panel: Panel, facts: Facts, rs: Ruleset) -> None:
    q = facts.quantities
    sodium, chloride, bicarbonate = q.get("sodium"), q.get("chloride"), q.get("bicarbonate")
    if sodium is None or chloride is None or bicarbonate is None:
        facts.missing_reason["anion_gap"] = "needs sodium, chloride and bicarbonate"
        return
    d = rs.derivations.anion_gap
    albumin = q.get("albumin")
    correction = derive.anion_gap_albumin_correction(
        albumin.value if albumin else None, d.albumin_factor, d.reference_albumin_g_per_l
    )
    value = derive.anion_gap(sodium.value, chloride.value, bicarbonate.value, correction)
    how = (
        f"albumin-corrected: + {d.albumin_factor:g} × ({d.reference_albumin_g_per_l:g} − albumin g/L)"
        if albumin is not None
        else "not albumin-corrected (no albumin result)"
    )
    gap = Quantity("anion_gap", value, "mmol/L", value, display_units("anion_gap", "mmol/L", rs), note=how)
    _set_status(gap, "anion_gap", panel.sex, rs, None, None)
    q["anion_gap"] = gap
    inputs = {"sodium": sodium, "chloride": chloride, "bicarbonate": bicarbonate}
    facts.derived["anion_gap"] = {
        "label": LABELS["anion_gap"],
        "value": value,
        "unit": "mmol/L",
        "shown": gap.shown,
        "formula": f"Na − (Cl + HCO3), {how}",
        "inputs": {**inputs, **({"albumin": albumin} if albumin is not None else {})},
        "status": gap.status,
        "note": how,
        "references": list(d.references),
    }


def _osmolality(facts: Facts, rs: Ruleset) -> None:
    """Calculated osmolality (no rule reads it: shown with its formula and inputs)."""
    q = facts.quantities
    sodium, glucose = q.get("sodium"), q.get("glucose")
    urea = q.get("urea") or q.get("bun")
    if sodium is None or glucose is None or urea is None:
        return
    value = derive.osmolality(sodium.value, glucose.value, urea.value)
    facts.derived["osmolality"] = {
        "label": "Calculated osmolality",
        "value": value,
        "unit": "mOsm/kg",
        "shown": f"{format_number(round(value, 1))} mOsm/kg",
        "formula": "2 × Na + glucose + urea, all mmol/L",
        "inputs": {"sodium": sodium, "glucose": glucose, ("urea" if "urea" in q else "bun"): urea},
        "references": list(rs.derivations.osmolality.references),
    }


def _sodium(panel: Panel, facts: Facts, rs: Ruleset) -> None:
    sodium, glucose = facts.quantities.get("sodium"), facts.quantities.get("glucose")
    if sodium is None or glucose is None:
        facts.missing_reason["corrected_sodium"] = "needs sodium and glucose"
        return
    if not derive.sodium_is_corrected(glucose.value, rs.sodium_trigger.for_unit(glucose.unit)):
        facts.missing_reason["corrected_sodium"] = "glucose below the correction trigger"
        return
    d = rs.derivations.corrected_sodium
    glucose_mg_dl = glucose.value / rs.units.factor("glucose", "mg/dL")
    values = {
        f.name: derive.corrected_sodium(sodium.value, glucose_mg_dl, f.factor, d.baseline_glucose_mg_dl)
        for f in d.factors
    }
    main, *others = d.factors
    value = values[main.name]
    factor = rs.units.factor("sodium", sodium.unit)
    alternatives = ", ".join(f"{f.name} factor {f.factor:g}: {format_number(values[f.name])} mmol/L" for f in others)
    q = Quantity(
        "corrected_sodium",
        value,
        sodium.unit,
        value / factor,
        display_units("sodium", sodium.unit, rs),
        note=f"{main.name} factor {main.factor:g}" + (f"; {alternatives}" if alternatives else ""),
    )
    lab = panel.results["sodium"]
    _set_status(q, "sodium", panel.sex, rs, lab.lab_low, lab.lab_high)
    facts.quantities["corrected_sodium"] = q
    facts.derived["corrected_sodium"] = {
        "label": LABELS["corrected_sodium"],
        "value": value,
        "unit": "mmol/L",
        "shown": q.shown,
        "formula": f"{d.formula}: Na + factor × (glucose mg/dL − "
        f"{d.baseline_glucose_mg_dl:g}) / 100, {main.name} factor {main.factor:g}",
        "inputs": {"sodium": sodium, "glucose": glucose},
        "status": q.status,
        "alternatives": {f.name: values[f.name] for f in others},
        "references": list(d.references),
    }
