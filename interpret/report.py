"""From evaluated rules to the `Interpretation`: wording, evidence, references.

Evidence is produced by walking the rule's condition over the panel's facts, so each finding
shows exactly the facts that made it fire, in the words of the rule's own vocabulary.
"""

from __future__ import annotations

import functools
import re
from typing import Any, cast

from interpret import serial
from interpret.engine import Engine, Outcome, available, inputs_that_can_be_unknown
from interpret.facts import ANALYTE_FACT, CRITICAL_STATUSES, LABELS, QUANTITIES
from interpret.medications import MedicationMatch
from interpret.models import (
    DerivedOut,
    EarlierOut,
    EvidenceOut,
    FindingOut,
    Interpretation,
    IntervalOut,
    MedicationOut,
    NotAssessedOut,
    PatientOut,
    ReferenceOut,
    ResultOut,
    RulesetOut,
    Severity,
    Status,
)
from interpret.prepare import Facts, Quantity
from interpret.ruleset import conditions as c
from interpret.ruleset.load import PLACEHOLDER, Ruleset
from interpret.units import format_number
from interpret.validate import Panel

STATUS_WORDS = {
    "critical_low": "critically low (beyond the configured critical limit)",
    "low": "low",
    "normal": "within the interval",
    "high": "high",
    "critical_high": "critically high (beyond the configured critical limit)",
}
COMPARE_WORDS = {"below": "below", "at_or_below": "at or below", "above": "above"}
COMPARE_WORDS["at_or_above"] = "at or above"


def label(name: str) -> str:
    found = LABELS.get(name)
    return found if found is not None else name.replace("_", " ").capitalize()


def missing_words(name: str, facts: Facts) -> str:
    if name in facts.missing_reason:
        return f"{label(name)}: {facts.missing_reason[name]}"
    if name in QUANTITIES:
        return f"{label(name)}: not measured"
    if name.startswith("earlier "):
        why = facts.missing_reason.get("history") or "no earlier result within the rule's window"
        return f"{label(name.removeprefix('earlier '))} earlier: {why}"
    return {"medications": "medication list: not supplied", "sex": "sex: not given"}.get(name, f"{name}: not given")


class Reporter:
    def __init__(self, ruleset: Ruleset, engine: Engine) -> None:
        self.rs = ruleset
        self.engine = engine
        self.ruleset_out = RulesetOut(name=ruleset.meta.name, version=ruleset.version, sha256=ruleset.sha256)
        self.disclaimer = ruleset.disclaimer()
        self.short_disclaimer = " ".join(ruleset.meta.short_disclaimer.split())
        self.references = {
            k: ReferenceOut(citation=r.citation, url=r.url, verified=r.verified) for k, r in ruleset.references.items()
        }
        self.logic = {r.code: r.condition.words() for r in ruleset.rules}
        # What each rule reads (its condition; with its escalations), walked once, not per panel
        self.reads = {r.code: frozenset(inputs_that_can_be_unknown(r.condition)) for r in ruleset.rules}
        self.reads_escalated = {
            r.code: frozenset(
                n for node in (r.condition, *(e for _, e in r.escalations)) for n in inputs_that_can_be_unknown(node)
            )
            for r in ruleset.rules
        }
        self.qualifies = {r.code: q for r in ruleset.rules if (q := r.definition.qualifies) is not None}
        self.labels = {name: a.label for name, a in ruleset.analytes.items()}
        self.class_labels = {code: c.label for code, c in ruleset.medications.data.classes.items()}

    def build(self, panel: Panel, facts: Facts, outcomes: list[Outcome]) -> Interpretation:
        rank = self.rs.severity_rank
        findings = [self._finding(o, facts) for o in outcomes if o.fired]
        fired = {f.code for f in findings}
        for f in findings:  # the single-result findings each pattern combines, where they fired
            f.explains = [c for c in self.rs.rule(f.code).definition.at_least_as_severe_as or [] if c in fired]
        qualifying = self._qualify(findings)
        # what puts the others in doubt is read first; then the most severe first
        findings.sort(key=lambda fo: (fo.code not in qualifying, -rank[fo.severity]))
        return Interpretation(
            patient=PatientOut(age=panel.age, sex=panel.sex),
            results=[self._result(panel, facts, a) for a in panel.results],
            derived={k: DerivedOut(name=k, **_defaults(v)) for k, v in facts.derived.items()},
            findings=findings,
            not_assessed=self._not_assessed(outcomes, facts),
            medications=None if panel.medications is None else [self._medication(m) for m in panel.medications],
            specimen_hemolyzed=panel.hemolyzed,
            collected_at=panel.collected_at.isoformat() if panel.collected_at else None,
            earlier=self._earlier(panel, facts),
            history_notes=list(panel.history_notes),
            max_severity=findings[0].severity if findings else None,
            ruleset=self.ruleset_out,
            intended_use=self.rs.meta.intended_use,
            disclaimer=self.disclaimer,
            short_disclaimer=self.short_disclaimer,
            references=self._cited(findings, facts),
        )

    @staticmethod
    def _not_assessed(outcomes: list[Outcome], facts: Facts) -> list[NotAssessedOut]:
        """The rules not assessed, each with what it lacks (the same input is worded once)."""
        words: dict[str, str] = {}
        out = []
        for o in outcomes:
            if o.fired is None:
                missing = [words[n] if n in words else words.setdefault(n, missing_words(n, facts)) for n in o.missing]
                out.append(NotAssessedOut(code=o.rule.code, title=o.rule.definition.title, missing=missing))
        return out

    def _cited(self, findings: list[FindingOut], facts: Facts) -> dict[str, ReferenceOut]:
        """The sources this response cites (findings, then derived values), each once."""
        keys = [k for f in findings for k in f.references]
        keys += [k for d in facts.derived.values() for k in d.get("references", [])]
        return {k: self.references[k] for k in dict.fromkeys(keys) if k in self.references}

    def _medication(self, m: MedicationMatch) -> MedicationOut:
        classes = sorted(m.classes)
        return MedicationOut(
            text=m.text,
            recognized=m.recognized,
            drugs=[d.name for d in m.drugs],
            classes=classes,
            class_labels=[self.class_labels[c] for c in classes],
        )

    def _result(self, panel: Panel, facts: Facts, analyte: str) -> ResultOut:
        r = panel.results[analyte]
        q = facts.quantities[ANALYTE_FACT[analyte]]
        factor = self.rs.units.factor(analyte, r.unit)
        shown_unit, canonical_unit = self.rs.display_units[analyte, r.unit]
        interval = None
        if q.interval is not None:
            lo, hi = q.interval.low / factor, q.interval.high / factor
            interval = IntervalOut(
                text=q.interval.text,
                low=lo if lo != float("-inf") else None,
                high=hi if hi != float("inf") else None,
                unit=shown_unit,
                source="laboratory" if q.interval_source == "laboratory" else "default",
            )
        return ResultOut(
            analyte=analyte,
            label=self.labels[analyte],
            value=r.value,
            unit=shown_unit,
            canonical_value=r.canonical,
            canonical_unit=canonical_unit,
            reference_interval=interval,
            status=cast("Status | None", q.status),
            needs_verification=q.verify is not None,
            **self._critical_shown(analyte, r.unit, factor),
        )

    @functools.cache  # noqa: B019  (one reporter per ruleset, a few units per analyte)
    def _critical_shown(self, analyte: str, unit: str, factor: float) -> dict[str, float | None]:
        """The critical limits in the unit the result was reported in (the range bar's ticks)."""
        return {
            name: (None if t is None else round(t.for_unit(unit) / factor, 6))
            for name, t in zip(("critical_below", "critical_at_or_above"), self.rs.critical[analyte], strict=True)
        }

    def _finding(self, o: Outcome, facts: Facts) -> FindingOut:
        rule = o.rule
        d = rule.definition
        evidence: list[EvidenceOut] = []
        drugs: list[str] = []
        self._evidence(rule.condition, facts, evidence, drugs)
        for to, node in rule.escalations:
            if o.severity == to and self._holds(node, facts):
                self._evidence(node, facts, evidence, drugs)
        evidence = list({e.statement: e for e in evidence}.values())
        assert o.severity is not None
        return FindingOut(
            code=d.code,
            severity=cast("Severity", o.severity),
            title=d.title,
            message=self._fill(d.message, facts, drugs),
            evidence=evidence,
            recommendation=self._fill(d.recommendation, facts, drugs),
            references=list(d.references),
            rule=f"{rule.source}#{d.code}",
            logic=self.logic[d.code],
            critical_note=self.rs.meta.critical_wording if self._beyond_critical_limit(o, facts) else None,
        )

    def _earlier(self, panel: Panel, facts: Facts) -> list[EarlierOut]:
        """Every earlier result used as history, latest first."""
        out = []
        for specimen, (hours, quantities) in zip(panel.history, facts.history or [], strict=True):
            for name, q in quantities.items():
                analyte = QUANTITIES[name].analyte
                out.append(
                    EarlierOut(
                        analyte=analyte,
                        label=self.labels.get(analyte, label(name)),
                        shown=q.shown,
                        canonical_value=q.value,
                        status=cast("Status | None", q.status),
                        collected_at=specimen.collected_at.isoformat(),
                        hours_before=round(hours, 2),
                    )
                )
        return out

    def _qualify(self, findings: list[FindingOut]) -> set[str]:
        """Give each finding the caveats of the data-quality findings (`qualifies` in rules/)
        that concern a quantity it reads; returns the codes of those data-quality findings."""
        qualifying = {f.code: self.qualifies[f.code] for f in findings if f.code in self.qualifies}
        for f in findings if qualifying else ():
            reads = self.reads[f.code]
            notes = [q.note for code, q in qualifying.items() if code != f.code and reads & set(q.quantities)]
            f.caveat = " ".join(dict.fromkeys(notes)) or None
        return set(qualifying)

    def _beyond_critical_limit(self, o: Outcome, f: Facts) -> bool:
        """Whether a value this finding reads is beyond its critical limit.

        The critical wording sends the clinician to the laboratory: it is true only of a value
        beyond a configured limit, not of a finding that is critical by combination (digoxin
        with low potassium and low magnesium).
        """
        if o.severity != "critical":
            return False
        return any(
            (q := f.quantities.get(name)) is not None and q.status in CRITICAL_STATUSES
            for name in self.reads_escalated[o.rule.code]
        )

    def _holds(self, node: c.Node, f: Facts) -> bool:
        return self.engine.check(node)(f) is True

    # --- evidence ----------------------------------------------------------------------------

    def _evidence(self, node: c.Node, f: Facts, out: list[EvidenceOut], drugs: list[str]) -> None:
        match node:
            case c.All(items) | c.Any_(items):
                for item in items:
                    if self._holds(item, f):
                        self._evidence(item, f, out, drugs)
            case c.Not(item):
                self._evidence(item, f, out, drugs)
            case _:
                statement = self._statement(node, f, drugs)
                if statement:
                    out.append(EvidenceOut(fact=_fact_name(node), statement=statement))

    def _statement(self, node: c.Node, f: Facts, drugs: list[str]) -> str:
        match node:
            case c.StatusIn(name, _, _):
                q = f.quantities.get(name)
                if q is None:
                    return missing_words(name, f)
                if name not in f.wording:
                    f.wording[name] = _quantity_status(q)
                return f.wording[name]
            case c.Compare(name, op, threshold):
                q = f.quantities.get(name)
                if q is None:
                    return missing_words(name, f)
                word = COMPARE_WORDS[op] if self._holds(node, f) else "not " + COMPARE_WORDS[op]
                return f"{label(name)} {q.show(threshold.for_unit(q.unit))} is {word} {threshold.words()}"
            case c.Available(name) | c.Missing(name):
                if available(name, f):
                    q = f.quantities.get(name)
                    return f"{label(name)} {q.shown} available" if q else f"{name} given"
                return missing_words(name, f)
            case c.Taking(classes) | c.TakingCount(classes, _):
                if f.classes is None:
                    return missing_words("medications", f)
                parts = []
                for cls in classes:
                    if cls in f.classes:
                        texts = f.classes[cls]
                        drugs.extend(t for t in texts if t not in drugs)
                        label_ = self.rs.medications.data.classes[cls].label
                        parts.append(f"{label_}: {', '.join(texts)}")
                return "Listed " + "; ".join(parts) if parts else "No listed drug of these classes"
            case c.SpecimenFlag():
                reported = "reported" if f.hemolyzed else "not reported"
                return f"Specimen {reported} haemolysed"
            case c.NeedsVerification(names):
                return "; ".join(q.verify for n in names if (q := f.quantities.get(n)) is not None and q.verify)
            case c.SexIs():
                return f"Sex: {f.sex}" if f.sex else missing_words("sex", f)
            case c.UnrecognizedMedications():
                return "Not recognised: " + self._unrecognized(f)
            case c.SettingOn(name):
                return f"Site setting {name} is {'on' if f.settings[name] else 'off'}"
            case c.Change() | c.Ratio() | c.Earlier() | c.StartedAfter():
                return self._across_time(node, f, drugs)
        return ""

    def _across_time(self, node: c.Node, f: Facts, drugs: list[str]) -> str:
        """The earlier values a condition across time compared: value, when, change."""
        match node:
            case c.Change(name, hours) | c.Ratio(name, hours) as n:
                now, ref = f.quantities.get(name), serial.reference(n, f)
                if now is None or ref is None:
                    return missing_words(f"earlier {name}" if now is not None else name, f)
                before, q = ref
                which = "highest" if getattr(n, "direction", "rise") == "fall" else "lowest"
                change = now.value - q.value
                shown = f"{'+' if change >= 0 else '−'}{format_number(round(abs(change), 3))} {now.units[1]}"
                if isinstance(n, c.Ratio):
                    shown = f"{format_number(round(now.value / q.value, 2))} ×" if q.value > 0 else "no ratio"
                return (
                    f"{label(name)} {now.shown} now; {which} earlier within {format_number(hours)} h: "
                    f"{q.shown}, {_hours(before)} before ({shown})"
                )
            case c.Earlier(name, hours) as n:
                found = f.earlier(name, hours)
                if not found:
                    return missing_words(f"earlier {name}", f)
                shown = "; ".join(
                    f"{q.shown} ({STATUS_WORDS.get(q.status or '', 'no interval')}), {_hours(h)} before"
                    for h, q in found[:4]
                )
                return f"Earlier {label(name).lower()} within {format_number(hours)} h: {shown}"
            case c.StartedAfter(classes) as n:
                inside = serial.started_in_time(n, f)
                texts = [t for cls in classes for t in (f.classes or {}).get(cls, [])]
                drugs.extend(t for t in texts if t not in drugs)
                if inside is None:
                    return f"Listed {', '.join(texts)}: start time not given"
                if not inside:
                    return (
                        "No potassium-class drug started in the window"
                        if not texts
                        else f"{', '.join(texts)}: not started inside the window"
                    )
                return (
                    f"{', '.join(texts)} started {_hours(min(inside))} before this specimen, after the earlier result"
                )
        return ""

    # --- wording --------------------------------------------------------------------------

    def _unrecognized(self, f: Facts) -> str:
        """Each unrecognised entry as written, with a spelling suggestion where one is close:
        a suggestion for the clinician to check, never a match the rules act on."""
        shown = []
        for text in f.unrecognized:
            near = self.rs.medications.suggestion(text)
            shown.append(f"{text!r} (did you mean {near}?)" if near else repr(text))
        return ", ".join(shown)

    def _fill(self, template: str, f: Facts, drugs: list[str]) -> str:
        if "{" not in template:
            return " ".join(template.split())

        def value(m: re.Match[str]) -> str:
            name, attr = m.group(1), m.group(2)
            if name == "drugs":
                return ", ".join(drugs) or "no listed drug"
            if name == "unrecognized_medications":
                return self._unrecognized(f)
            if name in ("aki_stage", "aki_baseline"):
                return f.aki.get(name.removeprefix("aki_"), "not worked out")
            if name == "verification":
                return "; ".join(q.verify for q in f.quantities.values() if q.verify)
            if attr == "missing":
                return f.missing_reason.get(name, "")
            q = f.quantities.get(name)
            if q is None:
                return "not measured" if name in QUANTITIES and not QUANTITIES[name].derived else "not available"
            if attr == "interval":
                return _interval_words(q)
            if attr in ("note", "category"):
                return str(getattr(q, attr) or "")
            return q.shown

        return " ".join(PLACEHOLDER.sub(value, template).split())


def _interval_words(q: Quantity) -> str:
    if q.interval is None:
        return "no interval"
    source = "laboratory interval" if q.interval_source == "laboratory" else "default adult interval"
    return f"{q.interval.text}, {source}"


def _quantity_status(q: Quantity) -> str:
    words = STATUS_WORDS.get(q.status or "", "no interval")
    extra = f" ({q.note})" if q.note else ""
    return f"{label(q.name)} {q.shown}{extra}: {words}; {_interval_words(q)}"


def _hours(hours: float) -> str:
    return f"{format_number(round(hours, 1))} h"


def _fact_name(node: c.Node) -> str:
    for attr in ("quantity", "name"):
        if hasattr(node, attr):
            return str(getattr(node, attr))
    if isinstance(node, c.Taking | c.TakingCount | c.UnrecognizedMedications):
        return "medications"
    if isinstance(node, c.SpecimenFlag):
        return "specimen"
    if isinstance(node, c.SexIs):
        return "sex"
    return "results"


def _defaults(values: dict[str, Any]) -> dict[str, Any]:
    base: dict[str, Any] = {
        "category": None,
        "category_term": None,
        "note": None,
        "status": None,
        "alternatives": {},
        "references": [],
    }
    merged = {**base, **values}
    merged["inputs"] = {k: _shown(v) for k, v in merged.get("inputs", {}).items()}
    return merged


def _shown(value: Any) -> str:
    """Derived values keep their inputs as facts; they are worded only when reported."""
    if isinstance(value, Quantity):
        return value.shown
    if isinstance(value, float | int):
        return format_number(value)
    return str(value)
