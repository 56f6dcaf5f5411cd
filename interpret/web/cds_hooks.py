"""CDS Hooks 2.0: discovery, the lab-interpretation service (patient-view, order-select), feedback.

Cards per the spec: one per finding, `summary` under 140 characters, `indicator` from the
finding's severity (rules/ruleset.yaml), `detail` in markdown with the evidence,
recommendation, rule and sources, a `source` linking to the rule's entry, and the disclaimer.
User-controlled text is escaped before it goes into markdown (clients render raw HTML).
"""

from __future__ import annotations

import re
import uuid
from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from interpret.engine import inputs_that_can_be_unknown
from interpret.facts import ANALYTE_FACT
from interpret.models import FindingOut, Interpretation, LocatedErrors
from interpret.pipeline import Interpreter
from interpret.units import format_number
from interpret.validate import InputError
from interpret.web.fhir import LAB_CRITICAL, LAB_FLAG_STATUS, LAB_FLAGS, Mapped, map_patient_view, resources
from interpret.web.fhir_client import FhirServerAccess, fetch, fill

router = APIRouter(tags=["cds-hooks"])

SERVICE_ID = "electrolyte-panel"
ORDER_SELECT_ID = "electrolyte-panel-order-select"
ORDER_SIGN_ID = "electrolyte-panel-order-sign"
SUMMARY_LIMIT = 139


class HookRequest(BaseModel):
    """Lenient on input: clients send extra fields and imperfect FHIR."""

    model_config = ConfigDict(extra="allow")
    hook: str
    hookInstance: str
    fhirServer: str | None = None
    fhirAuthorization: dict[str, Any] | None = None
    context: dict[str, Any]
    prefetch: dict[str, Any] | None = None


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


def _prefetch(interpreter: Interpreter) -> dict[str, str]:
    codes = sorted({code for a in interpreter.ruleset.analytes.values() for code in a.loinc})
    loinc = ",".join(f"http://loinc.org|{c}" for c in codes)
    return {
        "patient": "Patient/{{context.patientId}}",
        "labs": f"Observation?patient={{{{context.patientId}}}}&category=laboratory&code={loinc}&_sort=-date&_count=50",
        "meds": "MedicationRequest?patient={{context.patientId}}&status=active",
    }


@router.get("/cds-services")
def discovery(request: Request) -> dict[str, Any]:
    interpreter: Interpreter = request.app.state.interpreter
    rs = interpreter.ruleset
    description = (
        f"Interprets the latest serum electrolyte results (K, Mg, Na, Ca, creatinine/eGFR) with "
        f"the medication list: rule set {rs.meta.name} v{rs.version}. Decision support only."
    )
    prefetch = _prefetch(interpreter)
    return {
        "services": [
            {
                "hook": "patient-view",
                "id": SERVICE_ID,
                "title": "Electrolyte panel interpretation",
                "description": description,
                "prefetch": prefetch,
            },
            {
                "hook": "order-select",
                "id": ORDER_SELECT_ID,
                "title": "Electrolyte check for medication orders",
                "description": description + " Draft medication orders (the selected ones) are included.",
                "prefetch": prefetch,
            },
            {
                "hook": "order-sign",
                "id": ORDER_SIGN_ID,
                "title": "Electrolyte check when medication orders are signed",
                "description": description
                + " Draft medication orders are included; only findings about a drafted drug, and"
                " critical ones, are shown at signing.",
                "prefetch": prefetch,
            },
        ]
    }


def _operation_outcome(status: int, message: str) -> JSONResponse:
    return JSONResponse(
        {
            "resourceType": "OperationOutcome",
            "issue": [{"severity": "error", "code": "required", "diagnostics": message}],
        },
        status_code=status,
    )


ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "Body unreadable, or the wrong hook for this service (OperationOutcome)"},
    401: {"description": "No valid signed JWT from a trusted CDS client, where trust is configured (OperationOutcome)"},
    404: {"description": "No such service (OperationOutcome)"},
    412: {"description": "Required prefetch missing (OperationOutcome)"},
    413: {"description": "Body too large"},
    415: {"description": "Body not sent as application/json"},
    422: {"model": LocatedErrors, "description": "Not a CDS Hooks request; each error located"},
}


@router.get("/cds-services/feedback-summary")
def feedback_summary(request: Request) -> dict[str, Any]:
    """Registered before the service routes, so its path is not read as a service id.

    How often each kind of card was accepted or overridden, and why (counts only)."""
    tally: FeedbackTally = request.app.state.cds_feedback
    return tally.summary()


SERVICES = {SERVICE_ID: "patient-view", ORDER_SELECT_ID: "order-select", ORDER_SIGN_ID: "order-sign"}
ORDER_HOOKS = ("order-select", "order-sign")


@router.post(
    "/cds-services/{service_id}",
    response_model=CardsResponse,
    response_model_exclude_none=True,
    responses=ERRORS,
)
def call_service(service_id: str, body: HookRequest, request: Request) -> Any:
    interpreter: Interpreter = request.app.state.interpreter
    if service_id not in SERVICES:
        return _operation_outcome(404, f"no CDS service {service_id!r}")
    if body.hook != SERVICES[service_id]:
        return _operation_outcome(
            400, f"service {service_id!r} answers hook {SERVICES[service_id]!r}, not {body.hook!r}"
        )
    prefetch = dict(body.prefetch or {})
    context = body.context
    access: FhirServerAccess = request.app.state.fhir_access
    templates = _prefetch(interpreter)
    absent = [k for k in templates if k not in prefetch]
    if absent and body.fhirServer and body.fhirAuthorization and access.permits(body.fhirServer):
        for key in absent:
            prefetch[key] = _fetched(body.fhirServer, body.fhirAuthorization, templates[key], context, access)
    missing = [k for k in ("patient", "labs") if k not in prefetch]
    if missing:
        how = (
            "and this FHIR server is not one the site allowed (--fhir-server)"
            if body.fhirServer and body.fhirAuthorization
            else "and the call gives no fhirServer with fhirAuthorization to fetch it from"
        )
        return _operation_outcome(412, f"prefetch {', '.join(missing)} missing, {how}")
    draft = _draft_orders(context) if body.hook in ORDER_HOOKS else None
    patient_id = context.get("patientId") if isinstance(context.get("patientId"), str) else None
    mapped = map_patient_view(prefetch, interpreter.ruleset, draft, patient_id)
    tally = request.app.state.cds_feedback
    cards = CardMaker(interpreter, str(request.base_url).rstrip("/"), mapped, body.hook, tally)
    return {"cards": [c.model_dump(exclude_none=True) for c in cards.make()]}


def _fetched(
    server: str, authorization: dict[str, Any], template: str, context: dict[str, Any], access: FhirServerAccess
) -> Any:
    """The prefetch value fetched from the FHIR server, or an OperationOutcome saying why not."""
    query = fill(template, context)
    found, error = (
        (None, "the context lacks a value the query needs")
        if query is None
        else fetch(server, authorization, query, access)
    )
    if error is None:
        return found
    return {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": "exception", "diagnostics": error}],
    }


def _draft_orders(context: dict[str, Any]) -> Any:
    """The drafted orders, narrowed to `selections` where the hook names them (order-select)."""
    draft = context.get("draftOrders")
    selections = context.get("selections")
    if not isinstance(selections, list) or not selections:
        return draft
    chosen = {s for s in selections if isinstance(s, str)}
    return [r for r in resources(draft, "MedicationRequest") if f"MedicationRequest/{r.get('id')}" in chosen]


class FeedbackItem(BaseModel):
    model_config = ConfigDict(extra="allow")
    card: str = Field(min_length=1)
    outcome: Literal["accepted", "overridden"]
    outcomeTimestamp: str = Field(min_length=1)
    acceptedSuggestions: list[dict[str, Any]] | None = None
    overrideReason: dict[str, Any] | None = None


class FeedbackRequest(BaseModel):
    model_config = ConfigDict(extra="allow")
    feedback: list[FeedbackItem] = Field(min_length=1)


@router.post(
    "/cds-services/{service_id}/feedback",
    responses={k: ERRORS[k] for k in (400, 401, 404, 413, 415, 422)},
)
def feedback(service_id: str, body: dict[str, Any], request: Request) -> Any:
    """Counted per card kind (rule code), outcome and override reason; nothing about the
    patient is kept or logged. Cards are recognised by the uuid this process issued."""
    if service_id not in SERVICES:
        return _operation_outcome(404, f"no CDS service {service_id!r}")
    try:
        items = FeedbackRequest.model_validate(body).feedback
    except ValidationError as exc:
        where = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()[:5])
        return _operation_outcome(400, f"not CDS Hooks feedback: {where}")
    tally: FeedbackTally = request.app.state.cds_feedback
    for item in items:
        tally.count(service_id, item)
    return {"received": len(items)}


class FeedbackTally:
    """Counts of feedback per service, rule code, outcome and override reason. Card uuids are
    remembered (bounded) only to learn a card's rule code; no patient data is held."""

    def __init__(self, remember: int = 100_000) -> None:
        self.cards: dict[str, str] = {}
        self.remember = remember
        self.counts: dict[tuple[str, str, str, str], int] = {}

    def issued(self, card_uuid: str, code: str) -> None:
        if len(self.cards) >= self.remember:
            self.cards.pop(next(iter(self.cards)))
        self.cards[card_uuid] = code

    def count(self, service_id: str, item: FeedbackItem) -> None:
        code = self.cards.get(item.card, "unknown card")
        reason = _override_code(item.overrideReason)
        key = (service_id, code, item.outcome, reason)
        self.counts[key] = self.counts.get(key, 0) + 1

    def summary(self) -> dict[str, Any]:
        rows = [
            {"service": s, "card": c, "outcome": o, "override_reason": r or None, "count": n}
            for (s, c, o, r), n in sorted(self.counts.items())
        ]
        return {"feedback": rows}


def _override_code(override: dict[str, Any] | None) -> str:
    """The code of `overrideReason.reason` (a Coding, per the spec); the user's comment, which
    may identify the patient, is never kept."""
    reason = (override or {}).get("reason")
    code = reason.get("code") if isinstance(reason, dict) else None
    return code[:60] if isinstance(code, str) else ""


def _interpret(
    interpreter: Interpreter, panel: dict[str, Any], labels: list[str]
) -> tuple[Interpretation | None, list[str]]:
    """Interpret; whatever the core refuses is removed and named by its FHIR resource (never
    hidden), then the rest is interpreted.

    A refused result is dropped; a refused patient field drops the patient details, so the
    results are still interpreted without them.
    """
    refused: list[str] = []
    labels = list(labels)
    while panel["results"]:
        try:
            return interpreter.interpret(panel), refused
        except InputError as exc:
            bad: set[int] = set()
            patient = False
            for error in exc.errors:
                index = error.result
                if index is not None and index < len(labels):
                    bad.add(index)
                    refused.append(f"{labels[index]}: {error.message}")
                else:
                    patient = patient or error.path[:1] == ("patient",)
                    refused.append(
                        f"{'Patient' if error.path[:1] == ('patient',) else error.location}: {error.message}"
                    )
            if not bad and not patient:
                break
            panel["results"] = [r for i, r in enumerate(panel["results"]) if i not in bad]
            labels = [x for i, x in enumerate(labels) if i not in bad]
            if patient:
                panel.pop("patient", None)
    return None, refused


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


class CardMaker:
    """The cards for one call: findings first (most severe first), then what the clinician
    must know about the data (not supplied, not used, read with a caveat)."""

    def __init__(self, interpreter: Interpreter, base: str, mapped: Mapped, hook: str, tally: FeedbackTally) -> None:
        self.interpreter, self.rs, self.base, self.mapped = interpreter, interpreter.ruleset, base, mapped
        self.hook, self.tally = hook, tally
        self.source_label = f"Electrolyte rules v{self.rs.version}"
        short = " ".join(self.rs.meta.short_disclaimer.split())
        self.short_disclaimer = (
            f"{short} Rule set v{self.rs.version} (sha256 {self.rs.sha256[:12]}); full disclaimer: {base}/rules"
        )

    def make(self) -> list[Card]:
        if self.mapped.refusal:
            return [self._info("Not interpreted: adult reference intervals only", [md(self.mapped.refusal)])]
        if "laboratory results" in self.mapped.not_supplied:
            why = self.mapped.not_supplied["laboratory results"]
            return [self._info("Laboratory results not available", [md(f"Laboratory results: {why}.")])]
        result, refused = _interpret(self.interpreter, self.mapped.panel, self.mapped.labels)
        cards = [] if result is None else [self._card(f, result) for f in self._shown(result)]
        if result is not None:
            cards += self._not_supplied_cards(result)
        data = self._data_card(result, refused)
        if data is not None:
            cards.append(data)
        for card in cards:
            self.tally.issued(card.uuid, card.source.topic.code if card.source.topic else "data")
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
        lines += [f"- {md(r.citation)}" for r in finding.references]
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
            cards.append(self._info(summary[:SUMMARY_LIMIT], lines))
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
                f"{self.mapped.earlier} earlier results of the same analytes are history; the latest of each is used.",
                "",
            ]
        return self._info(summary, lines)

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

    def _info(self, summary: str, lines: list[str]) -> Card:
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
