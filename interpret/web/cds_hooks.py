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
from pydantic import BaseModel, ConfigDict, Field

from interpret.models import FindingOut, Interpretation, LocatedErrors
from interpret.pipeline import Interpreter
from interpret.validate import InputError
from interpret.web.fhir import map_patient_view

router = APIRouter(tags=["cds-hooks"])

SERVICE_ID = "electrolyte-panel"
ORDER_SELECT_ID = "electrolyte-panel-order-select"
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
                "description": description + " Draft medication orders are included.",
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
    422: {"model": LocatedErrors, "description": "Not a CDS Hooks request; each error located"},
}


@router.post(
    "/cds-services/{service_id}",
    response_model=CardsResponse,
    response_model_exclude_none=True,
    responses=ERRORS,
)
def call_service(service_id: str, body: HookRequest, request: Request) -> Any:
    interpreter: Interpreter = request.app.state.interpreter
    expected = {SERVICE_ID: "patient-view", ORDER_SELECT_ID: "order-select"}
    if service_id not in expected:
        return _operation_outcome(404, f"no CDS service {service_id!r}")
    if body.hook != expected[service_id]:
        return _operation_outcome(
            400, f"service {service_id!r} answers hook {expected[service_id]!r}, not {body.hook!r}"
        )
    prefetch = body.prefetch or {}
    missing = [k for k in ("patient", "labs") if k not in prefetch]
    if missing:
        return _operation_outcome(
            412,
            f"prefetch {', '.join(missing)} missing: this service reads only prefetched data "
            "and does not query FHIR servers",
        )
    draft = body.context.get("draftOrders") if body.hook == "order-select" else None
    mapped = map_patient_view(prefetch, interpreter.ruleset, draft)
    base = str(request.base_url).rstrip("/")
    result, refused = _interpret(interpreter, mapped.panel)
    cards = [] if result is None else [_card(f, interpreter, base) for f in result.findings]
    unused = mapped.unused + refused
    if unused or result is None:
        cards.append(_unused_card(unused, result is None, interpreter, base))
    return {"cards": [c.model_dump(exclude_none=True) for c in cards]}


@router.post(
    "/cds-services/{service_id}/feedback",
    responses={k: ERRORS[k] for k in (400, 401, 413, 422)},
)
def feedback(service_id: str, body: dict[str, Any]) -> dict[str, Any]:
    """Accepted and acknowledged; feedback content is not logged (it may identify a patient)."""
    count = len(body.get("feedback", [])) if isinstance(body.get("feedback"), list) else 0
    return {"received": count}


def _interpret(interpreter: Interpreter, panel: dict[str, Any]) -> tuple[Interpretation | None, list[str]]:
    """Interpret; whatever the core refuses is removed and named (never hidden), then retried.

    A refused result is dropped; a refused patient field (e.g. age under 18) drops the patient
    details, so the results are still interpreted without them.
    """
    refused: list[str] = []
    while panel["results"]:
        try:
            return interpreter.interpret(panel), refused
        except InputError as exc:
            refused += [f"{loc}: {msg}" for loc, msg in exc.errors]
            locs = [loc for loc, _ in exc.errors]
            bad = {int(m.group(1)) for loc in locs if (m := re.match(r"results\[(\d+)\]", loc))}
            if not bad and not any(loc.startswith("patient") for loc in locs):
                break
            panel["results"] = [r for i, r in enumerate(panel["results"]) if i not in bad]
            if any(loc.startswith("patient") for loc in locs):
                panel.pop("patient", None)
    return None, refused


def md(text: str) -> str:
    """Escape user-controlled text for GitHub-flavoured markdown rendered with raw HTML."""
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return re.sub(r"([\\`*_{}\[\]()#+\-!|~])", r"\\\1", text)


def _summary(finding: FindingOut) -> str:
    text = f"{finding.title}: {finding.message}"
    return text if len(text) <= SUMMARY_LIMIT else text[: SUMMARY_LIMIT - 1].rstrip() + "…"


def _card(finding: FindingOut, interpreter: Interpreter, base: str) -> Card:
    rs = interpreter.ruleset
    indicator = {s.name: s.cds_indicator for s in rs.meta.severities}[finding.severity]
    lines = [
        f"**{md(finding.severity.capitalize())}.** {md(finding.message)}",
        "",
    ]
    if finding.critical_note:
        lines += [f"**{md(finding.critical_note)}**", ""]
    lines += [f"**To consider:** {md(finding.recommendation)}", "", "**Evidence**", ""]
    lines += [f"- {md(e.statement)}" for e in finding.evidence]
    lines += [
        "",
        f"**Rule** `{finding.code}`: fires when {md(finding.logic)}.",
        "",
        "**Sources**",
        "",
    ]
    lines += [f"- {md(r.citation)}" for r in finding.references]
    lines += ["", f"_{md(rs.disclaimer())}_"]
    return Card(
        uuid=str(uuid.uuid4()),
        summary=_summary(finding),
        detail="\n".join(lines),
        indicator=indicator,  # type: ignore[arg-type]
        source=Source(
            label=f"Electrolyte rules v{rs.version}",
            url=f"{base}/rules#{finding.code}",
            topic=Coding(system="urn:interpret:rule", code=finding.code, display=finding.title),
        ),
    )


def _unused_card(unused: list[str], nothing: bool, interpreter: Interpreter, base: str) -> Card:
    rs = interpreter.ruleset
    summary = "No usable electrolyte results to interpret" if nothing else "Some data could not be used"
    lines = [
        "These resources were not used:" if unused else "No laboratory results were found.",
        "",
    ]
    lines += [f"- {md(u)}" for u in unused]
    lines += ["", f"_{md(rs.disclaimer())}_"]
    return Card(
        uuid=str(uuid.uuid4()),
        summary=summary,
        detail="\n".join(lines),
        indicator="info",
        source=Source(label=f"Electrolyte rules v{rs.version}", url=f"{base}/rules"),
    )
