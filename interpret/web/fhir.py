"""FHIR R4 resources (from CDS Hooks prefetch) -> the core's input shape.

Parsed defensively: real EHRs send imperfect R4 (strings where objects belong, lists where
a single value belongs, blank texts), so every element is read through a type check and a
resource that cannot be read is named with the reason, never silently dropped and never a
server error. What is read from which element (README, "CDS Hooks"):

- Observation: the latest result per analyte by *instant* (effectiveDateTime,
  effectiveInstant, effectivePeriod.start, else issued; a date without a time is ordered as
  the start of that day, and said so); earlier results are history, not errors. LOINC
  `code.coding`; `valueQuantity.value` (a number, never a boolean) with `code` as the unit
  when `system` is UCUM or absent, otherwise `unit`; `referenceRange[0]`; `status`;
  `interpretation` (the laboratory's flags, compared with ours); `subject` (another
  patient's result is excluded and named); haemolysis from the specimen's coded condition
  (HL7 v2 0493 `HEM`, SNOMED CT), then from notes with negation handled ("not haemolysed"),
  only for the specimens of the panel being interpreted. A panel sent as one Observation with a
  `component` per result: each component of ours is read with the Observation's status, time,
  subject and specimen.
- Patient (a resource or a searchset Bundle): gender, birthDate (age at the latest result).
- MedicationRequest (active, on-hold, draft; not `doNotPerform`, an order not to give it) and
  MedicationStatement (active, intended):
  medicationCodeableConcept, or medicationReference (contained, a Medication in the same
  bundle, or its display); dosage route.
- A prefetch that is an OperationOutcome (the spec's way to say a query failed) or absent is
  reported as not supplied, with the rules it leaves unassessed.
- A prefetch Bundle that is a first page only (a next link, or fewer results than its total)
  is said to be partial, with what was therefore not read (`first_page_only`); the service
  fetches the rest where it has FHIR server access (`cds_hooks.call_service`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from interpret.ruleset import Ruleset

LOINC = "http://loinc.org"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
UCUM = "http://unitsofmeasure.org"
# Each code system as FHIR names it, and as senders converted from CDA or HL7 v2 still write
# it: its HL7 OID, or the URL with a trailing slash. Another system is another code.
SYSTEM_SPELLINGS = {
    LOINC: {LOINC, LOINC + "/", "urn:oid:2.16.840.1.113883.6.1"},
    RXNORM: {RXNORM, RXNORM + "/", "urn:oid:2.16.840.1.113883.6.88"},
    UCUM: {UCUM, UCUM + "/", "urn:oid:2.16.840.1.113883.6.8"},
}


def _is(system: Any, name: str) -> bool:
    """Whether a coding's `system` is the code system `name` (`SYSTEM_SPELLINGS`)."""
    return isinstance(system, str) and system in SYSTEM_SPELLINGS[name]


USABLE_STATUS = {"final", "amended", "corrected", "preliminary", "registered", "unknown", None}
UNFINISHED_STATUS = {"preliminary", "registered"}
REQUEST_STATUS = {"active", "on-hold", "draft", None}
STATEMENT_STATUS = {"active", "intended", None}
LAB_FLAGS = {
    "LL": "critically low",
    "HH": "critically high",
    "L": "low",
    "H": "high",
    "N": "normal",
    "A": "abnormal",
    "AA": "critically abnormal",
}
LAB_CRITICAL = {"LL", "HH", "AA"}
# The status of ours that each of the laboratory's flags agrees with ("A"/"AA" name no direction).
LAB_FLAG_STATUS = {"LL": "critical_low", "HH": "critical_high", "L": "low", "H": "high", "N": "normal"}
NOT_OURS = "not an analyte this service interprets"


@dataclass
class Mapped:
    panel: dict[str, Any]
    labels: list[str] = field(default_factory=list)  # one per panel result: its Observation
    unused: list[str] = field(default_factory=list)  # "Observation/abc (LOINC 1234-5): reason"
    notes: list[str] = field(default_factory=list)  # read, with a caveat the clinician should see
    earlier: int = 0  # earlier results of the same analytes: history, not errors
    history_labels: list[list[str]] = field(default_factory=list)  # the resources of panel["history"][i]
    other_tests: list[str] = field(default_factory=list)  # LOINC codes of other tests, counted
    not_supplied: dict[str, str] = field(default_factory=dict)  # "medications": why
    refusal: str | None = None  # the whole request cannot be interpreted (a child)
    draft_medications: list[str] = field(default_factory=list)
    lab_flags: list[tuple[str, str, str]] = field(default_factory=list)  # label, analyte, flag
    patient_id: str | None = None


# --- defensive readers ---------------------------------------------------------------------


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _text(value: Any) -> str | None:
    """A non-blank string, stripped; anything else is None."""
    return value.strip() or None if isinstance(value, str) else None


def _number(value: Any) -> float | int | None:
    """A JSON number; booleans are not numbers (`true` is not 1.0 mmol/L)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return value


def _codings(concept: Any) -> list[dict[str, Any]]:
    return [c for c in _list(_dict(concept).get("coding")) if isinstance(c, dict)]


def resources(bundle: Any, resource_type: str) -> list[dict[str, Any]]:
    """Resources of a type from a Bundle (entries as servers send them), a list, or one."""
    if isinstance(bundle, dict) and bundle.get("resourceType") == "Bundle":
        items = [_dict(e).get("resource") for e in _list(bundle.get("entry"))]
    elif isinstance(bundle, list):
        items = bundle
    else:
        items = [bundle]
    return [r for r in items if isinstance(r, dict) and r.get("resourceType") == resource_type]


def failed_prefetch(value: Any) -> str | None:
    """Why a prefetch value is a failure (an OperationOutcome), or None."""
    if isinstance(value, dict) and value.get("resourceType") == "OperationOutcome":
        issues = [_dict(i) for i in _list(value.get("issue"))]
        words = [_text(i.get("diagnostics")) or _text(_dict(i.get("details")).get("text")) for i in issues]
        return "the EHR reported the query as failed" + (
            f" ({'; '.join(w for w in words if w)[:200]})" if any(words) else ""
        )
    return None


def first_page_only(value: Any) -> str | None:
    """Why a prefetch Bundle holds only part of its search (a next page, or fewer results than
    its total), or None: what is beyond it was not read, and the clinician must be told."""
    if not (isinstance(value, dict) and value.get("resourceType") == "Bundle"):
        return None
    entries = [_dict(e) for e in _list(value.get("entry"))]
    matches = sum(1 for e in entries if _dict(e.get("search")).get("mode") in (None, "match"))
    total = value.get("total")
    total = total if isinstance(total, int) and not isinstance(total, bool) else None
    of = f" of {total}" if total is not None else ""
    if any(_dict(link).get("relation") == "next" for link in _list(value.get("link"))):
        return f"the EHR sent a first page ({matches}{of} results; Bundle.link next)"
    if total is not None and total > matches:
        return f"the EHR sent {matches}{of} results"
    return None


# What is missed when a prefetch is a first page only (`first_page_only`).
PARTS_NOT_READ = {
    "labs": (
        "laboratory results",
        "results beyond it were not read: the latest of each analyte is this page's, and the "
        "rules across time may miss an earlier value",
    ),
    "meds": (
        "medication list",
        "medications beyond it were not read: a drug missing from this list may still be taken",
    ),
}
NOT_FOLLOWED = "its next pages were not fetched (no FHIR server access in this call, or not one the site allowed)"


def _name(resource: dict[str, Any]) -> str:
    rid = resource.get("id")
    return f"{resource.get('resourceType')}/{rid if isinstance(rid, str | int) else '?'}"


# --- time ----------------------------------------------------------------------------------

FHIR_DATE = re.compile(r"^(\d{4})(-(\d{2})(-(\d{2}))?)?$")


def instant(text: Any) -> tuple[datetime, str] | None:
    """A FHIR dateTime as an aware instant, with how it was read ("" when exact).

    A time without an offset is read as UTC; a date, or a partial date (year, year-month),
    as the start of that day, month or year in UTC. The caveat says so, for the card.
    """
    if not isinstance(text, str):
        return None
    match = FHIR_DATE.match(text.strip())
    if match:
        year, month, day = int(match.group(1)), int(match.group(3) or 1), int(match.group(5) or 1)
        try:
            moment = datetime(year, month, day, tzinfo=UTC)
        except ValueError:
            return None
        return moment, f"collection time is a date only ({text.strip()}): ordered as its start"
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC), f"collection time {text.strip()} has no offset: read as UTC"
    return moment, ""


def _observed(obs: dict[str, Any]) -> tuple[datetime, str] | None:
    for text in (
        obs.get("effectiveDateTime"),
        obs.get("effectiveInstant"),
        _dict(obs.get("effectivePeriod")).get("start"),
        obs.get("issued"),
    ):
        when = instant(text)
        if when is not None:
            return when
    return None


def age_on(birth_date: str, on: date) -> float | None:
    when = instant(birth_date)
    if when is None:
        return None
    born = when[0].date()
    return on.year - born.year - ((on.month, on.day) < (born.month, born.day))


# --- Observations --------------------------------------------------------------------------


@dataclass
class _Candidate:
    label: str
    when: datetime
    result: dict[str, Any]
    notes: list[str]
    hemolyzed: bool
    flag: str | None


# What an Observation's component holds of its own (FHIR R4 Observation.component); every
# other element (status, effective time, subject, specimen, notes) is the Observation's.
COMPONENT_ELEMENTS = {
    "code",
    "valueQuantity",
    "valueCodeableConcept",
    "valueString",
    "valueBoolean",
    "valueInteger",
    "valueRange",
    "valueRatio",
    "valueSampledData",
    "valueTime",
    "valueDateTime",
    "valuePeriod",
    "dataAbsentReason",
    "interpretation",
    "referenceRange",
    "component",
}


def _loinc(resource: dict[str, Any]) -> list[str]:
    return [str(c.get("code")) for c in _codings(resource.get("code")) if _is(c.get("system"), LOINC) and c.get("code")]


def _unit(quantity: dict[str, Any]) -> str | None:
    """UCUM `code` when the system is UCUM (or absent); otherwise the human `unit` text."""
    system, code, unit = quantity.get("system"), _text(quantity.get("code")), _text(quantity.get("unit"))
    if code and (system is None or _is(system, UCUM)):
        return code
    return unit


def _specimen_hemolyzed(specimen: dict[str, Any], rs: Ruleset) -> bool:
    """A condition coded as haemolysis (ruleset.yaml `specimen.hemolysis_codes`), or its text."""
    coded = {(c.system, c.code) for c in rs.meta.specimen.hemolysis_codes}
    for condition in _list(specimen.get("condition")):
        codes = {(c.get("system"), c.get("code")) for c in _codings(condition)}
        if codes & coded:
            return True
        if not codes and rs.meta.specimen.note_says_hemolyzed(_text(_dict(condition).get("text")) or ""):
            return True
    return False


def referenced_id(reference: Any, kind: str) -> str | None:
    """The id a reference names, if it names a `kind` resource: relative (`Patient/1`),
    absolute (`https://ehr/fhir/Patient/1`), versioned (`Patient/1/_history/2`), a bundle's
    `urn:uuid:1`, or a bare id; None for a reference to another kind or none at all."""
    text = _text(reference)
    if text is None:
        return None
    if text.startswith("urn:uuid:"):
        return text.removeprefix("urn:uuid:") or None
    tail = text.rstrip("/").split("/")
    if len(tail) >= 4 and tail[-2] == "_history":
        tail = tail[:-2]
    if len(tail) == 1:
        return tail[0] or None
    return tail[-1] if tail[-2] == kind else None


def _by_id(found: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {r["id"]: r for r in found if isinstance(r.get("id"), str)}


def _subject_matches(obs: dict[str, Any], patient_ids: set[str]) -> bool:
    reference = _text(_dict(obs.get("subject")).get("reference"))
    if reference is None or not patient_ids:
        return True  # no subject: the prefetch was a query for this patient
    return referenced_id(reference, "Patient") in patient_ids


class _LabReader:
    """Reads the labs prefetch: each usable Observation becomes a candidate result."""

    def __init__(self, rs: Ruleset, labs: Any, patient_ids: set[str], mapped: Mapped) -> None:
        self.rs, self.patient_ids, self.mapped = rs, patient_ids, mapped
        self.specimens = _by_id(resources(labs, "Specimen"))

    def read(self, obs: dict[str, Any]) -> list[tuple[str, _Candidate]]:
        """The Observation's own result, and those of its components: a panel sent as one
        Observation with a `component` per test (status, time, subject and specimen are the
        Observation's). An Observation none of whose codes is ours is another test."""
        found: list[tuple[str, _Candidate]] = []
        ours = False
        codes = _loinc(obs)
        parts = [(obs, f"{_name(obs)} (LOINC {', '.join(codes) or 'none'})", codes)]
        for i, component in enumerate(_list(obs.get("component"))):
            part = {k: v for k, v in obs.items() if k not in COMPONENT_ELEMENTS}
            part.update({k: v for k, v in _dict(component).items() if k in COMPONENT_ELEMENTS})
            part_codes = _loinc(part)
            if not any(self.rs.analyte(code) for code in part_codes):
                continue  # a component of another test (blood pressure's systolic, ...)
            parts.append(
                (part, f"{_name(obs)} component {i + 1} (LOINC {', '.join(part_codes) or 'none'})", part_codes)
            )
        for resource, label, part_codes in parts:
            problem, candidate = self._read(resource, part_codes, label)
            ours = ours or problem != NOT_OURS
            if candidate is not None:
                found.append(candidate)
            elif problem and problem != NOT_OURS:
                self.mapped.unused.append(f"{label}: {problem}")
        if not ours:
            self.mapped.other_tests.append(", ".join(codes) or "no LOINC code")
        return found

    def _read(
        self, obs: dict[str, Any], codes: list[str], label: str
    ) -> tuple[str | None, tuple[str, _Candidate] | None]:
        analyte, code = next(((a, c) for c in codes if (a := self.rs.analyte(c))), (None, None))
        status = obs.get("status")
        if not isinstance(status, str | None) or status not in USABLE_STATUS:
            return f"status {str(status)[:40]!r} is not a usable result status", None
        if analyte is None:
            return NOT_OURS, None
        if not _subject_matches(obs, self.patient_ids):
            return "the result of another patient (subject), excluded", None
        quantity = _dict(obs.get("valueQuantity"))
        value = _number(quantity.get("value"))
        if value is None:
            return "no numeric valueQuantity.value", None
        if quantity.get("comparator") is not None:
            return f"censored value ({str(quantity.get('comparator'))[:4]}{value}): not a result", None
        unit = _unit(quantity)
        if unit is None:
            return "valueQuantity has no usable unit (a UCUM code, or unit text)", None
        when = _observed(obs)
        if when is None:
            return "no readable collection time (effectiveDateTime, effectivePeriod.start or issued)", None
        result: dict[str, Any] = {"analyte": analyte, "value": value, "unit": unit}
        reference_range = self._reference_range(obs)
        if reference_range:
            result["reference_range"] = reference_range
        notes = [when[1]] if when[1] else []
        specimen_words = self.rs.analytes[analyte].loinc.get(str(code), "")
        if "blood" in specimen_words and "serum" not in specimen_words:
            notes.append(f"measured in {specimen_words} (LOINC {code}), read against serum intervals")
        if status in UNFINISHED_STATUS:
            notes.append(f"a {status} result, not final")
        candidate = _Candidate(label, when[0], result, notes, self._hemolyzed(obs), self._flag(obs))
        return None, (analyte, candidate)

    @staticmethod
    def _reference_range(obs: dict[str, Any]) -> dict[str, float]:
        for rr in _list(obs.get("referenceRange")):
            bounds = {k: _number(_dict(_dict(rr).get(k)).get("value")) for k in ("low", "high")}
            found = {k: v for k, v in bounds.items() if v is not None}
            if found:
                return found
        return {}

    def _hemolyzed(self, obs: dict[str, Any]) -> bool:
        """Coded specimen condition first, then the specimen's and the result's own notes."""
        reference = _text(_dict(obs.get("specimen")).get("reference"))
        specimen = self.specimens.get(referenced_id(reference, "Specimen") or "")
        if specimen is None and reference and reference.startswith("#"):
            specimen = next((c for c in _list(obs.get("contained")) if _dict(c).get("id") == reference[1:]), None)
        if specimen and _specimen_hemolyzed(_dict(specimen), self.rs):
            return True
        texts = [_text(_dict(n).get("text")) or "" for n in _list(obs.get("note"))]
        texts += [_text(_dict(i).get("text")) or "" for i in _list(obs.get("interpretation"))]
        return any(self.rs.meta.specimen.note_says_hemolyzed(t) for t in texts)

    @staticmethod
    def _flag(obs: dict[str, Any]) -> str | None:
        for concept in _list(obs.get("interpretation")):
            for coding in _codings(concept):
                if isinstance(coding.get("code"), str) and coding["code"] in LAB_FLAGS:
                    return str(coding["code"])
        return None


def map_patient_view(
    prefetch: dict[str, Any],
    rs: Ruleset,
    draft_orders: Any = None,
    patient_id: str | None = None,
    unfollowed: dict[str, str] | None = None,
) -> Mapped:
    """The prefetch of a patient-view, order-select or order-sign call as a panel.
    `unfollowed`: why a first-page prefetch's next pages could not be fetched, by key."""
    mapped = Mapped(panel={"results": []})
    for key, (what, missed) in PARTS_NOT_READ.items():
        if (why := first_page_only(prefetch.get(key))) is not None:
            mapped.notes.append(f"{what}: {why}; {(unfollowed or {}).get(key, NOT_FOLLOWED)}: {missed}")
    patient = next(iter(resources(prefetch.get("patient"), "Patient")), None)
    patient_ids = {i for i in (patient_id, (patient or {}).get("id")) if isinstance(i, str) and i}
    mapped.patient_id = patient_id or next(iter(patient_ids), None)
    if (why := failed_prefetch(prefetch.get("patient"))) is not None:
        mapped.not_supplied["patient details"] = why
    labs = prefetch.get("labs")
    if (why := failed_prefetch(labs)) is not None:
        mapped.not_supplied["laboratory results"] = why
    reader = _LabReader(rs, labs, patient_ids, mapped)
    latest: dict[str, _Candidate] = {}
    candidates: list[tuple[str, _Candidate]] = []
    for found in (c for obs in resources(labs, "Observation") for c in reader.read(obs)):
        analyte, candidate = found
        candidates.append(found)
        previous = latest.get(analyte)
        if previous is None or candidate.when > previous.when:
            latest[analyte] = candidate
        if previous is not None:
            mapped.earlier += 1
    _history(candidates, latest, mapped)
    for analyte, candidate in latest.items():
        mapped.panel["results"].append(candidate.result)
        mapped.labels.append(candidate.label)
        mapped.notes += [f"{candidate.label}: {note}" for note in candidate.notes]
        if candidate.flag:
            mapped.lab_flags.append((candidate.label, analyte, candidate.flag))
    mapped.panel["specimen"] = {"hemolyzed": any(c.hemolyzed for c in latest.values())}
    on = max((c.when for c in latest.values()), default=datetime.now(UTC)).date()
    _patient(patient, on, rs, mapped)
    _medications(prefetch, draft_orders, mapped)
    return mapped


def _history(candidates: list[tuple[str, _Candidate]], latest: dict[str, _Candidate], mapped: Mapped) -> None:
    """Every result that is not the latest of its analyte is history of the latest specimen:
    grouped by instant, the newest instant of the latest results being `collected_at`."""
    if not latest:
        return
    now = max(c.when for c in latest.values())
    used = {id(c) for c in latest.values()}
    by_instant: dict[datetime, dict[str, _Candidate]] = {}
    for analyte, candidate in candidates:
        if id(candidate) in used or candidate.when >= now:
            continue
        same = by_instant.setdefault(candidate.when, {})
        if analyte in same:  # two results of one analyte at one instant: the first is kept
            mapped.unused.append(f"{candidate.label}: a second {analyte} result at the same time, not used")
            continue
        same[analyte] = candidate
    mapped.panel["collected_at"] = now.isoformat()
    history, labels = [], []
    for when in sorted(by_instant, reverse=True):
        found = by_instant[when]
        entry: dict[str, Any] = {"collected_at": when.isoformat(), "results": [c.result for c in found.values()]}
        if any(c.hemolyzed for c in found.values()):
            entry["specimen"] = {"hemolyzed": True}
        history.append(entry)
        labels.append([c.label for c in found.values()])
    if history:
        mapped.panel["history"], mapped.history_labels = history, labels


def _patient(patient: dict[str, Any] | None, on: date, rs: Ruleset, mapped: Mapped) -> None:
    if patient is None:
        return
    info: dict[str, Any] = {}
    gender = patient.get("gender")
    if gender in ("female", "male", "other", "unknown"):
        info["sex"] = gender
    birth = patient.get("birthDate")
    if birth is not None:
        age = age_on(birth, on) if isinstance(birth, str) else None
        if age is None:
            mapped.unused.append(f"{_name(patient)}: birthDate is not a FHIR date; age unknown")
        elif age < rs.meta.patient_age.min:
            mapped.refusal = (
                f"{_name(patient)} is {age:g} years old: this service uses adult reference intervals "
                f"only (age {rs.meta.patient_age.min:g} and over), so nothing was interpreted"
            )
        elif age <= rs.meta.patient_age.max:
            info["age"] = age
        else:
            mapped.unused.append(f"{_name(patient)}: age {age:g} is beyond {rs.meta.patient_age.max:g}; age unknown")
    if info:
        mapped.panel["patient"] = info


# --- medications ---------------------------------------------------------------------------


def _concept_name(concept: Any) -> tuple[str | None, str | None]:
    """(text, RxNorm code) of a CodeableConcept; blank texts are absent."""
    codings = _codings(concept)
    text = _text(_dict(concept).get("text")) or next((t for c in codings if (t := _text(c.get("display")))), None)
    code = next((str(c["code"]) for c in codings if _is(c.get("system"), RXNORM) and _text(c.get("code"))), None)
    return text, code


def _referenced_medication(request: dict[str, Any], bundle_medications: dict[str, dict[str, Any]]) -> Any:
    reference = _dict(request.get("medicationReference"))
    target = _text(reference.get("reference"))
    if target and target.startswith("#"):
        contained = next((c for c in _list(request.get("contained")) if _dict(c).get("id") == target[1:]), None)
        if contained is not None:
            return _dict(contained).get("code")
    elif (found := bundle_medications.get(referenced_id(target, "Medication") or "")) is not None:
        return found.get("code")
    display = _text(reference.get("display"))
    return {"text": display} if display else None


def _medication(request: dict[str, Any], bundle_medications: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
    concept = request.get("medicationCodeableConcept")
    text, code = _concept_name(concept)
    if not text and not code and request.get("medicationReference") is not None:
        text, code = _concept_name(_referenced_medication(request, bundle_medications))
    if not text and not code:
        return None
    med: dict[str, Any] = {"name": text or f"RxNorm {code}", "rxnorm": code, "route": _route(request)}
    start = _started(request)
    if start is not None:
        med["start"] = start.isoformat()
    return med


def _started(request: dict[str, Any]) -> datetime | None:
    """When an order or statement started: the dosage's timing bounds, the statement's
    effective time, else when the order was written (authoredOn)."""
    for dosage in _list(request.get("dosageInstruction")) or _list(request.get("dosage")):
        bounds = _dict(_dict(_dict(dosage).get("timing")).get("repeat")).get("boundsPeriod")
        if (found := instant(_dict(bounds).get("start"))) is not None:
            return found[0]
    for value in (
        _dict(request.get("effectivePeriod")).get("start"),
        request.get("effectiveDateTime"),
        request.get("authoredOn"),
    ):
        if (found := instant(value)) is not None:
            return found[0]
    return None


def _route(request: dict[str, Any]) -> str | None:
    """The route of the first dosage instruction, as text (SNOMED CT display or text)."""
    dosages = _list(request.get("dosageInstruction")) or _list(request.get("dosage"))
    for dosage in dosages:
        text, _ = _concept_name(_dict(dosage).get("route"))
        if text:
            return text
    return None


def _medications(prefetch: dict[str, Any], draft_orders: Any, mapped: Mapped) -> None:
    meds = prefetch.get("meds")
    if (why := failed_prefetch(meds)) is not None:
        mapped.not_supplied["medication list"] = why
    elif "meds" not in prefetch and draft_orders is None:
        mapped.not_supplied["medication list"] = "not in the prefetch"
    if "medication list" in mapped.not_supplied and draft_orders is None:
        return  # medication rules are reported as not assessed
    bundle_medications = _by_id(resources(meds, "Medication"))
    medications: list[dict[str, Any]] = []
    not_current: list[str] = []
    for kind, allowed in (("MedicationRequest", REQUEST_STATUS), ("MedicationStatement", STATEMENT_STATUS)):
        for request in resources(meds, kind):
            status = request.get("status")
            if not isinstance(status, str | None) or status not in allowed:
                not_current.append(str(status)[:20])
                continue
            if request.get("doNotPerform") is True:  # an order NOT to give the drug
                not_current.append("do-not-perform")
                continue
            _add(request, bundle_medications, medications, mapped, "")
    for request in resources(draft_orders, "MedicationRequest"):
        if request.get("doNotPerform") is True:
            not_current.append("do-not-perform (draft)")
            continue
        med = _add(request, bundle_medications, medications, mapped, " (draft order)")
        if med is not None:
            mapped.draft_medications.append(med["name"])
    if not_current:
        counts = {s: not_current.count(s) for s in sorted(set(not_current))}
        mapped.notes.append(
            "Medication orders not current, not used: " + ", ".join(f"{n} {s}" for s, n in counts.items())
        )
    mapped.panel["medications"] = medications


def _add(
    request: dict[str, Any],
    bundle_medications: dict[str, dict[str, Any]],
    medications: list[dict[str, Any]],
    mapped: Mapped,
    suffix: str,
) -> dict[str, Any] | None:
    med = _medication(request, bundle_medications)
    if med is None:
        mapped.unused.append(f"{_name(request)}{suffix}: no medication code or text")
    else:
        medications.append(med)
    return med
