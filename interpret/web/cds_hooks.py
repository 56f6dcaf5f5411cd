"""CDS Hooks 2.0 over HTTP: discovery, the lab-interpretation services (patient-view,
order-select, order-sign), prefetch and FHIR-server fallback, feedback. The cards themselves
are rendered by `interpret.render.cds_cards`.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from interpret.models import Interpretation, LocatedErrors
from interpret.pipeline import Interpreter
from interpret.render.cds_cards import Card, CardsResponse, CdsCards, md
from interpret.validate import InputError
from interpret.web.fhir import PARTS_NOT_READ, Mapped, first_page_only, map_patient_view, resources
from interpret.web.fhir_client import FhirServerAccess, fetch, fill, rest_of
from interpret.web.security import REFUSED_BODIES

router = APIRouter(tags=["cds-hooks"])

SERVICE_ID = "electrolyte-panel"
ORDER_SELECT_ID = "electrolyte-panel-order-select"
ORDER_SIGN_ID = "electrolyte-panel-order-sign"


class HookRequest(BaseModel):
    """Lenient on input: clients send extra fields and imperfect FHIR."""

    model_config = ConfigDict(extra="allow")
    hook: str
    hookInstance: str
    fhirServer: str | None = None
    fhirAuthorization: dict[str, Any] | None = None
    context: dict[str, Any]
    prefetch: dict[str, Any] | None = None


def _prefetch(interpreter: Interpreter) -> dict[str, str]:
    codes = sorted({code for a in interpreter.ruleset.analytes.values() for code in a.loinc})
    loinc = ",".join(f"http://loinc.org|{c}" for c in codes)
    return {
        "patient": "Patient/{{context.patientId}}",
        # newest first, enough for a week of daily panels of every analyte: the rules across
        # time read the earlier results as history (CDS Hooks 2.0 has no relative dates)
        "labs": f"Observation?patient={{{{context.patientId}}}}&category=laboratory&code={loinc}&_sort=-date&_count=200",
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
    **REFUSED_BODIES,
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
    server, authorization = body.fhirServer, body.fhirAuthorization
    unfollowed: dict[str, str] = {}
    if server and authorization and access.permits(server):  # the site allows this FHIR server
        for key in absent:
            prefetch[key] = _fetched(server, authorization, templates[key], context, access)
        for key in PARTS_NOT_READ:  # a first page the EHR sent: the rest fetched, or why not
            if key not in absent and first_page_only(prefetch.get(key)) is not None:
                whole, error = rest_of(server, authorization, prefetch[key], access)
                if error is None:
                    prefetch[key] = whole
                else:
                    unfollowed[key] = f"its next pages could not be fetched ({error})"
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
    mapped = map_patient_view(prefetch, interpreter.ruleset, draft, patient_id, unfollowed)
    tally = request.app.state.cds_feedback
    cards = make_cards(interpreter, str(request.base_url).rstrip("/"), mapped, body.hook, tally)
    return {"cards": [c.model_dump(exclude_none=True) for c in cards]}


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
    interpreter: Interpreter, panel: dict[str, Any], labels: list[str], history_labels: list[list[str]] | None = None
) -> tuple[Interpretation | None, list[str]]:
    """Interpret; whatever the core refuses is removed and named by its FHIR resource (never
    hidden), then the rest is interpreted.

    A refused result is dropped; a refused earlier result drops its earlier specimen from the
    history; a refused patient field drops the patient details, so the results are still
    interpreted without them.
    """
    refused: list[str] = []
    labels, history_labels = list(labels), list(history_labels or [])
    while panel["results"]:
        try:
            return interpreter.interpret(panel), refused
        except InputError as exc:
            bad: set[int] = set()
            bad_history: set[int] = set()
            patient = False
            for error in exc.errors:
                index, path = error.result, error.path
                if index is not None and index < len(labels):
                    bad.add(index)
                    refused.append(f"{labels[index]}: {error.message}")
                elif path[:1] == ("history",) and len(path) > 3 and isinstance(path[1], int):
                    h, i = path[1], path[3]
                    bad_history.add(h)
                    names = history_labels[h] if h < len(history_labels) else []
                    where = names[i] if isinstance(i, int) and i < len(names) else error.location
                    refused.append(f"{where} (an earlier result): {error.message}")
                else:
                    patient = patient or path[:1] == ("patient",)
                    refused.append(f"{'Patient' if path[:1] == ('patient',) else error.location}: {error.message}")
            if not bad and not patient and not bad_history:
                break
            panel["results"] = [r for i, r in enumerate(panel["results"]) if i not in bad]
            labels = [x for i, x in enumerate(labels) if i not in bad]
            if bad_history:
                panel["history"] = [e for h, e in enumerate(panel.get("history", [])) if h not in bad_history]
                history_labels = [x for h, x in enumerate(history_labels) if h not in bad_history]
            if patient:
                panel.pop("patient", None)
    return None, refused


def make_cards(interpreter: Interpreter, base: str, mapped: Mapped, hook: str, tally: FeedbackTally) -> list[Card]:
    """Interpret what the FHIR mapping made of the call, then render the cards (`render.cds_cards`)."""
    cards = CdsCards(interpreter.ruleset, base, mapped, hook)
    if mapped.refusal:
        found = [cards.info("Not interpreted: adult reference intervals only", [md(mapped.refusal)])]
    elif "laboratory results" in mapped.not_supplied:
        why = mapped.not_supplied["laboratory results"]
        found = [cards.info("Laboratory results not available", [md(f"Laboratory results: {why}.")])]
    else:
        found = cards.render(*_interpret(interpreter, mapped.panel, mapped.labels, mapped.history_labels))
    for card in found:
        tally.issued(card.uuid, card.source.topic.code if card.source.topic else "data")
    return found
