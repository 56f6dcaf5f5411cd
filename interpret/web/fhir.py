"""FHIR R4 resources (from CDS Hooks prefetch) -> the core's input shape.

Parsed leniently (real clients send imperfect R4, e.g. the CDS Hooks sandbox): only the
fields we need are read. Every Observation or MedicationRequest that cannot be used is named
with the reason, never silently dropped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from interpret.ruleset import Ruleset

LOINC = "http://loinc.org"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
USABLE_STATUS = {"final", "amended", "corrected", "preliminary", "registered", "unknown", None}
HAEMOLYSIS_WORDS = ("hemoly", "haemoly")


@dataclass
class Mapped:
    panel: dict[str, Any]
    unused: list[str] = field(default_factory=list)  # "Observation/abc (LOINC 1234-5): reason"
    draft_medications: list[str] = field(default_factory=list)


def resources(bundle: Any, resource_type: str) -> list[dict[str, Any]]:
    """Resources of a type from a Bundle, a list, or a single resource."""
    if isinstance(bundle, dict) and bundle.get("resourceType") == "Bundle":
        items = [e.get("resource") for e in bundle.get("entry") or [] if isinstance(e, dict)]
    elif isinstance(bundle, list):
        items = bundle
    else:
        items = [bundle]
    return [r for r in items if isinstance(r, dict) and r.get("resourceType") == resource_type]


def _name(resource: dict[str, Any]) -> str:
    return f"{resource.get('resourceType')}/{resource.get('id', '?')}"


def _when(obs: dict[str, Any]) -> str:
    return str(
        obs.get("effectiveDateTime") or (obs.get("effectivePeriod") or {}).get("start") or obs.get("issued") or ""
    )


def age_on(birth_date: str, on: date) -> float | None:
    try:
        parts = [int(p) for p in birth_date[:10].split("-")]
    except ValueError:
        return None
    year, month, day = [*parts, 7, 1][:3] if len(parts) < 3 else parts
    born = date(year, month, day)
    return on.year - born.year - ((on.month, on.day) < (born.month, born.day))


def map_patient_view(prefetch: dict[str, Any], rs: Ruleset, draft_orders: Any = None) -> Mapped:
    mapped = Mapped(panel={"results": []})
    latest: dict[str, tuple[str, dict[str, Any], dict[str, Any]]] = {}
    hemolyzed = False
    for obs in resources(prefetch.get("labs"), "Observation"):
        label = _name(obs)
        codes = [c.get("code") for c in (obs.get("code") or {}).get("coding") or [] if c.get("system") == LOINC]
        analyte = next((a for c in codes if c and (a := rs.analyte(str(c)))), None)
        label += f" (LOINC {', '.join(str(c) for c in codes) or 'none'})"
        if obs.get("status") not in USABLE_STATUS:
            mapped.unused.append(f"{label}: status {obs.get('status')}")
            continue
        if analyte is None:
            mapped.unused.append(f"{label}: not an analyte this service interprets")
            continue
        quantity = obs.get("valueQuantity")
        if not isinstance(quantity, dict) or not isinstance(quantity.get("value"), int | float):
            mapped.unused.append(f"{label}: no numeric valueQuantity")
            continue
        if quantity.get("comparator"):
            mapped.unused.append(f"{label}: censored value ({quantity['comparator']}{quantity['value']})")
            continue
        result: dict[str, Any] = {
            "analyte": analyte,
            "value": quantity["value"],
            "unit": quantity.get("code") or quantity.get("unit") or "",
        }
        for rr in obs.get("referenceRange") or []:
            bounds = {k: (rr.get(k) or {}).get("value") for k in ("low", "high")}
            if any(isinstance(v, int | float) for v in bounds.values()):
                result["reference_range"] = {k: v for k, v in bounds.items() if isinstance(v, int | float)}
                break
        text = " ".join(str(n.get("text", "")) for n in obs.get("note") or []).casefold()
        text += " ".join(str(i.get("text", "")) for i in obs.get("interpretation") or []).casefold()
        if any(word in text for word in HAEMOLYSIS_WORDS):
            hemolyzed = True
        previous = latest.get(analyte)
        if previous is None or _when(obs) > previous[0]:
            if previous is not None:
                mapped.unused.append(f"{previous[1]['_label']}: an older {analyte} result; the latest is used")
            obs["_label"] = label
            latest[analyte] = (_when(obs), obs, result)
        else:
            mapped.unused.append(f"{label}: an older {analyte} result; the latest is used")
    mapped.panel["results"] = [r for _, _, r in latest.values()]
    mapped.panel["specimen"] = {"hemolyzed": hemolyzed}
    _patient(prefetch.get("patient"), latest, mapped)
    _medications(prefetch, draft_orders, mapped)
    return mapped


def _patient(patient: Any, latest: dict[str, Any], mapped: Mapped) -> None:
    if not isinstance(patient, dict) or patient.get("resourceType") != "Patient":
        return
    info: dict[str, Any] = {}
    gender = patient.get("gender")
    if gender in ("female", "male", "other", "unknown"):
        info["sex"] = gender
    when = max((w for w, _, _ in latest.values() if w), default="")
    try:
        on = datetime.fromisoformat(when[:10]).date() if when else date.today()
    except ValueError:
        on = date.today()
    if patient.get("birthDate"):
        age = age_on(str(patient["birthDate"]), on)
        if age is not None:
            info["age"] = age
    if info:
        mapped.panel["patient"] = info


def _medication(request: dict[str, Any]) -> dict[str, Any] | None:
    concept = request.get("medicationCodeableConcept") or {}
    codings = concept.get("coding") or []
    text = concept.get("text") or next((c.get("display") for c in codings if c.get("display")), None)
    code = next((str(c.get("code")) for c in codings if c.get("system") == RXNORM and c.get("code")), None)
    if not text and not code:
        return None
    name = text or f"RxNorm {code}"
    route = _route(request)
    if route and route.casefold() not in name.casefold():
        name = f"{name} ({route})"  # "Ophthalmic route": the catalogue's local_forms read it
    return {"name": name, "rxnorm": code}


def _route(request: dict[str, Any]) -> str | None:
    """The route of the first dosage instruction, as text (SNOMED CT display or text)."""
    for dosage in request.get("dosageInstruction") or []:
        route = dosage.get("route") or {}
        text = route.get("text") or next(
            (c.get("display") for c in route.get("coding") or [] if c.get("display")), None
        )
        if text:
            return str(text)
    return None


def _medications(prefetch: dict[str, Any], draft_orders: Any, mapped: Mapped) -> None:
    if "meds" not in prefetch and draft_orders is None:
        return  # medication list unknown: medication rules will be reported as not assessed
    medications = []
    for request in resources(prefetch.get("meds"), "MedicationRequest"):
        if request.get("status") not in (None, "active", "on-hold", "draft"):
            continue
        med = _medication(request)
        if med is None:
            mapped.unused.append(f"{_name(request)}: no medication code or text")
        else:
            medications.append(med)
    for request in resources(draft_orders, "MedicationRequest"):
        med = _medication(request)
        if med is None:
            mapped.unused.append(f"{_name(request)} (draft order): no medication code or text")
        else:
            medications.append(med)
            mapped.draft_medications.append(med["name"])
    mapped.panel["medications"] = medications
