"""CDS Hooks 2.0 cards, rendered from an Interpretation and what the FHIR mapping noted.

Per the spec: one card per finding, `summary` under 140 characters, `indicator` from the
finding's severity (rules/ruleset.yaml), `detail` in markdown with the evidence,
recommendation, rule and sources, a `source` linking to the rule's entry, and the short
disclaimer. User-controlled text is escaped before it goes into markdown (clients render raw
HTML). The HTTP side (prefetch, feedback) is `interpret.web.cds_hooks`.
"""

from __future__ import annotations

import re
import uuid
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from interpret.engine import inputs_that_can_be_unknown
from interpret.facts import ANALYTE_FACT
from interpret.models import FindingOut, Interpretation
from interpret.ruleset import Ruleset
from interpret.units import format_number
from interpret.web.fhir import LAB_CRITICAL, LAB_FLAG_STATUS, LAB_FLAGS

if TYPE_CHECKING:
    from interpret.web.fhir import Mapped

SUMMARY_LIMIT = 139


class Coding(BaseModel):
    system: str
    code: str
    display: str | None = None


class Source(BaseModel):
    label: str
    url: str | None = None
    topic: Coding | None = None


class Card(BaseModel):
    model_config = ConfigDict(extra="forbid")
    uuid: str
    summary: str = Field(max_length=140)
    detail: str
    indicator: Literal["info", "warning", "critical"]
    source: Source
    overrideReasons: list[Coding] | None = None
    suggestions: list[dict[str, Any]] | None = None


class CardsResponse(BaseModel):
    cards: list[Card]


def md(text: str) -> str:
    """Escape user-controlled text for GitHub-flavoured markdown rendered with raw HTML."""
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return re.sub(r"([\\`*_{}\[\]()#+\-!|~])", r"\\\1", text)


# What a missing prefetch leaves unknown, as the core names it in not_assessed.
NEEDS = {"medication list": ("medication",), "patient details": ("age", "sex", "eGFR", "egfr")}

OVERRIDE_REASONS = [
    Coding(system="urn:interpret:override-reason", code="not-relevant", display="Not relevant to this patient"),
    Coding(system="urn:interpret:override-reason", code="already-addressed", display="Already addressed"),
    Coding(system="urn:interpret:override-reason", code="result-unreliable", display="Result not reliable"),
    Coding(system="urn:interpret:override-reason", code="benefit-outweighs-risk", display="Benefit outweighs risk"),
]


class CdsCards:
    """The cards for one call: findings first (most severe first), then what the clinician
    must know about the data (not supplied, not used, read with a caveat)."""

    def __init__(self, rs: Ruleset, base: str, mapped: Mapped, hook: str) -> None:
        self.rs, self.base, self.mapped, self.hook = rs, base, mapped, hook
        self.source_label = f"Electrolyte rules v{self.rs.version}"
        short = " ".join(self.rs.meta.short_disclaimer.split())
        self.short_disclaimer = (
            f"{short} Rule set v{self.rs.version} (sha256 {self.rs.sha256[:12]}); full disclaimer: {base}/rules"
        )

    def render(self, result: Interpretation | None, refused: list[str]) -> list[Card]:
        """The cards of an interpretation (None: nothing could be interpreted) and of the
        resources the core refused (`refused`, each named by its FHIR resource)."""
        cards = [] if result is None else [self._card(f, result) for f in self._shown(result)]
        if result is not None:
            cards += self._not_supplied_cards(result)
        data = self._data_card(result, refused)
        if data is not None:
            cards.append(data)
        return cards

    def _shown(self, result: Interpretation) -> list[FindingOut]:
        """All findings; at order-sign with drafted drugs, only those about a drafted drug or
        critical (the PDDI IG: do not repeat at signing what the clinician has already seen)."""
        if self.hook != "order-sign" or not self.mapped.draft_medications:
            return result.findings
        return [f for f in result.findings if f.severity == "critical" or self._drafted_in(f, result)]

    def _drafted_in(self, finding: FindingOut, result: Interpretation) -> list[str]:
        drafted = set(self.mapped.draft_medications)
        names = [d for m in result.medications or [] if m.text in drafted for d in m.drugs]
        message = finding.message.casefold()
        return [n for n in dict.fromkeys(names) if n.casefold() in message]

    def _summary(self, finding: FindingOut, result: Interpretation) -> str:
        """Title with the values the finding reads; a drafted drug is named as new."""
        drafted = self._drafted_in(finding, result)
        head = f"New order {', '.join(drafted)}: {finding.title}" if drafted else finding.title
        values = _values(self.rs.rule(finding.code), result)
        while values and len(f"{head}: {', '.join(values)}") > SUMMARY_LIMIT:
            values.pop()
        text = f"{head}: {', '.join(values)}" if values else head
        return text if len(text) <= SUMMARY_LIMIT else text[: SUMMARY_LIMIT - 1].rstrip() + "…"

    def _card(self, finding: FindingOut, result: Interpretation) -> Card:
        indicator = {s.name: s.cds_indicator for s in self.rs.meta.severities}[finding.severity]
        lines = [f"**{md(finding.severity.capitalize())}.** {md(finding.message)}", ""]
        if finding.caveat:
            lines += [f"**May be an artefact:** {md(finding.caveat)}", ""]
        if finding.critical_note:
            lines += [f"**{md(finding.critical_note)}**", ""]
        lines += [f"**To consider:** {md(finding.recommendation)}", "", "**Evidence**", ""]
        lines += [f"- {md(e.statement)}" for e in finding.evidence]
        lines += ["", f"**Rule** `{finding.code}`: fires when {md(finding.logic)}.", "", "**Sources**", ""]
        lines += [f"- {md(result.references[k].citation)}" for k in finding.references]
        lines += ["", f"_{md(self.short_disclaimer)}_"]
        return Card(
            uuid=str(uuid.uuid4()),
            summary=self._summary(finding, result),
            detail="\n".join(lines),
            indicator=indicator,  # type: ignore[arg-type]
            source=Source(
                label=self.source_label,
                url=f"{self.base}/rules#{finding.code}",
                topic=Coding(system="urn:interpret:rule", code=finding.code, display=finding.title),
            ),
            overrideReasons=OVERRIDE_REASONS if indicator in ("warning", "critical") else None,
            suggestions=self._suggestions(finding),
        )

    def _suggestions(self, finding: FindingOut) -> list[dict[str, Any]] | None:
        """A draft ServiceRequest for the test the rule proposes (rules/: order_suggestion)."""
        order = self.rs.rule(finding.code).definition.order_suggestion
        if order is None:
            return None
        request: dict[str, Any] = {
            "resourceType": "ServiceRequest",
            "status": "draft",
            "intent": "proposal",
            "category": [
                {
                    "coding": [
                        {"system": "http://snomed.info/sct", "code": "108252007", "display": "Laboratory procedure"}
                    ]
                }
            ],
            "code": {"coding": [{"system": "http://loinc.org", "code": order.loinc, "display": order.display}]},
        }
        if self.mapped.patient_id:
            request["subject"] = {"reference": f"Patient/{self.mapped.patient_id}"}
        action = {"type": "create", "description": order.label, "resource": request}
        return [{"label": order.label, "uuid": str(uuid.uuid4()), "actions": [action]}]

    def _not_supplied_cards(self, result: Interpretation) -> list[Card]:
        cards = []
        for what, why in self.mapped.not_supplied.items():
            needs = NEEDS[what]
            rules = [n.title for n in result.not_assessed if any(m.startswith(needs) for m in n.missing)]
            if what == "medication list" and self.mapped.draft_medications:
                lines = [md(f"The active medication list: {why}. Only the drafted orders were read.")]
                summary = "Active medication list not available: only drafted orders checked"
            else:
                lines = [md(f"The {what}: {why}."), ""]
                lines += ["Not assessed for want of it:", ""] + [f"- {md(t)}" for t in rules]
                summary = f"{what.capitalize()} not available: {len(rules)} rules not assessed"
            cards.append(self.info(summary[:SUMMARY_LIMIT], lines))
        return cards

    def _data_card(self, result: Interpretation | None, refused: list[str]) -> Card | None:
        unused = self.mapped.unused + refused
        notes = self.mapped.notes + (self._lab_flag_notes(result) if result else [])
        if result is None:
            summary = "No usable electrolyte results to interpret"
        elif unused:
            summary = "Some data could not be used"
        elif notes:
            summary = "Notes on the data used"
        elif self.mapped.other_tests:
            summary = "Other tests were not interpreted"
        else:
            return None
        lines: list[str] = []
        if unused:
            lines += ["These resources were not used:", ""] + [f"- {md(u)}" for u in unused] + [""]
        elif result is None:
            lines += ["No laboratory results were found.", ""]
        if notes:
            lines += ["Read with a caveat:", ""] + [f"- {md(n)}" for n in notes] + [""]
        if self.mapped.other_tests:
            counts = {c: self.mapped.other_tests.count(c) for c in dict.fromkeys(self.mapped.other_tests)}
            shown = ", ".join(f"{c} ×{n}" if n > 1 else c for c, n in list(counts.items())[:12])
            more = f" and {len(counts) - 12} more codes" if len(counts) > 12 else ""
            lines += [
                md(
                    f"{len(self.mapped.other_tests)} Observations of tests this service does not interpret "
                    f"(LOINC {shown}{more})."
                ),
                "",
            ]
        if self.mapped.earlier:
            lines += [
                f"{self.mapped.earlier} earlier results of the same analytes are read as history (for the "
                "rules across time); the latest of each is interpreted.",
                "",
            ]
        return self.info(summary, lines)

    def _lab_flag_notes(self, result: Interpretation) -> list[str]:
        """The laboratory's own flags, shown where critical or where they differ from ours."""
        ours = {r.analyte: r.status for r in result.results}
        notes = []
        for label, analyte, flag in self.mapped.lab_flags:
            status = ours.get(analyte)
            agrees = LAB_FLAG_STATUS.get(flag)
            if flag in LAB_CRITICAL and status != agrees:
                notes.append(
                    f"{label}: the laboratory flags it {LAB_FLAGS[flag]} ({flag}); this service reads it as "
                    f"{(status or 'unknown').replace('_', ' ')} against its configured limits: the "
                    "laboratory's critical-result procedure applies"
                )
            elif agrees and status and status.removeprefix("critical_") != agrees.removeprefix("critical_"):
                notes.append(
                    f"{label}: the laboratory flags it {LAB_FLAGS[flag]} ({flag}); this service reads it as "
                    f"{status.replace('_', ' ')} (its interval may differ)"
                )
        return notes

    def info(self, summary: str, lines: list[str]) -> Card:
        return Card(
            uuid=str(uuid.uuid4()),
            summary=summary,
            detail="\n".join([*lines, "", f"_{md(self.short_disclaimer)}_"]),
            indicator="info",
            source=Source(label=self.source_label, url=f"{self.base}/rules"),
        )


def _values(rule: Any, result: Interpretation) -> list[str]:
    """'Potassium 3 mmol/L' for each result or derived value the rule reads, in rule order."""
    by_fact = {ANALYTE_FACT.get(r.analyte, r.analyte): r for r in result.results}
    values = []
    for name in inputs_that_can_be_unknown(rule.condition):
        if name in by_fact:
            r = by_fact[name]
            values.append(f"{r.label} {format_number(r.value)} {r.unit}")
        elif name in result.derived:
            d = result.derived[name]
            values.append(f"{d.label} {d.shown}")
    return list(dict.fromkeys(values))
