"""CDS Hooks on public FHIR R4 payloads this project did not write (tests/fixtures/fhir/README.md):
US Core examples and a Synthea patient, used as sent or with one field changed."""

from __future__ import annotations

import copy
import json
import random

import pytest
from fastapi.testclient import TestClient

from interpret.web.app import create_app
from tests.conftest import ROOT

FHIR = ROOT / "tests/fixtures/fhir"
SYNTHEA = json.loads((FHIR / "synthea/Brent_Beer_7dc94cc0-8c2e-4835-9994-cecbe894bcbf.json").read_text())
UCUM = "http://unitsofmeasure.org"


def us_core(name: str) -> dict:
    return json.loads((FHIR / f"us-core/{name}.json").read_text())


def bundle(*resources: dict) -> dict:
    return {"resourceType": "Bundle", "type": "searchset", "entry": [{"resource": r} for r in resources]}


def request(labs: list[dict], patient: dict | None = None, meds: list[dict] | None = None, **extra) -> dict:
    patient = patient or {"resourceType": "Patient", "id": "example", "gender": "female", "birthDate": "1953-04-12"}
    prefetch = {"patient": patient, "labs": bundle(*labs)}
    if meds is not None:
        prefetch["meds"] = bundle(*meds)
    body = {
        "hook": "patient-view",
        "hookInstance": "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea",
        "context": {"userId": "Practitioner/example", "patientId": patient.get("id", "example")},
        "prefetch": prefetch,
    }
    body.update(extra)
    return body


def potassium(value: float, when: str, rid: str, **changes) -> dict:
    """US Core's serum potassium example with another value and time."""
    obs = us_core("observation-serum-potassium")
    obs.update(id=rid, effectiveDateTime=when)
    obs["valueQuantity"]["value"] = value
    obs.pop("interpretation", None)
    obs.update(changes)
    return obs


@pytest.fixture(scope="module")
def client(interpreter):
    return TestClient(create_app(interpreter))


def cards(client, body, service="electrolyte-panel") -> list[dict]:
    response = client.post(f"/cds-services/{service}", json=body)
    assert response.status_code == 200, response.text
    return response.json()["cards"]


def codes(found: list[dict]) -> set[str]:
    return {c["source"].get("topic", {}).get("code") for c in found} - {None}


def data_card(found: list[dict]) -> str:
    """The text of the cards about the data (no rule), markdown escapes removed."""
    return "\n".join(c["detail"] for c in found if "topic" not in c["source"]).replace("\\", "")


# 1. instants, not strings


def test_latest_result_is_chosen_by_instant_not_by_string(client):
    """23:30+01:00 is 22:30 Z, before 22:45 Z: the 3.4 is the latest and it is low."""
    found = cards(
        client,
        request(
            [
                potassium(4.6, "2012-01-03T23:30:00+01:00", "k-a"),
                potassium(3.4, "2012-01-03T22:45:00Z", "k-b"),
            ]
        ),
    )
    assert "hypokalemia" in codes(found)


def test_synthea_offsets_across_a_daylight_saving_night(client):
    """Synthea writes local offsets: 01:30-04:00 (05:30 Z) is before 01:10-05:00 (06:10 Z)."""
    k = next(
        e["resource"]
        for e in SYNTHEA["entry"]
        if e["resource"]["resourceType"] == "Observation" and e["resource"]["code"]["coding"][0]["code"] == "6298-4"
    )
    first, second = copy.deepcopy(k), copy.deepcopy(k)
    first.update(id="k1", effectiveDateTime="2012-11-04T01:30:00-04:00")
    first["valueQuantity"]["value"] = 4.4
    second.update(id="k2", effectiveDateTime="2012-11-04T01:10:00-05:00")
    second["valueQuantity"]["value"] = 3.1
    patient = next(e["resource"] for e in SYNTHEA["entry"] if e["resource"]["resourceType"] == "Patient")
    found = cards(client, request([first, second], patient=patient))
    assert "hypokalemia" in codes(found)


def test_a_date_without_a_time_is_ordered_and_said_so(client):
    found = cards(client, request([us_core("observation-serum-potassium")]))
    assert "hyperkalemia" not in codes(found)  # 5.4 within the laboratory's own 3.5-5.5
    assert "date only (2005-07-05)" in data_card(found)


# 2. units by system


def test_a_snomed_coded_unit_uses_the_unit_text(client):
    obs = potassium(3.1, "2020-01-01T08:00:00Z", "k")
    obs["valueQuantity"] = {"value": 3.1, "unit": "mmol/L", "system": "http://snomed.info/sct", "code": "258813002"}
    assert "hypokalemia" in codes(cards(client, request([obs])))


def test_no_usable_unit_is_refused_by_name(client):
    obs = potassium(3.1, "2020-01-01T08:00:00Z", "k-nounit")
    obs["valueQuantity"] = {"value": 3.1, "system": "http://snomed.info/sct", "code": "258813002"}
    found = cards(client, request([obs]))
    assert "Observation/k-nounit" in data_card(found) and "no usable unit" in data_card(found)


# 3. haemolysis


def test_not_haemolysed_in_a_note_is_not_haemolysis(client):
    obs = potassium(5.9, "2020-01-01T08:00:00Z", "k", note=[{"text": "Specimen not hemolyzed."}])
    found = codes(cards(client, request([obs])))
    assert "hyperkalemia" in found and "possible_pseudohyperkalemia" not in found


@pytest.mark.parametrize(
    ("note", "haemolysed"),
    [
        ("Hemolysis index 20: no interference", False),  # a measurement's name, not a statement
        ("Hemolysis Index: 150", False),  # its value decides, and a note gives no threshold
        ("Slightly hemolyzed specimen; hemolysis index 60", True),
        ("HEMOLYSIS FALSELY ELEVATES K..", True),
    ],
)
def test_a_haemolysis_index_in_a_note_is_not_itself_haemolysis(client, note, haemolysed):
    """Calling a real high potassium "possibly pseudohyperkalaemia" because a note names the
    haemolysis index would hold back its treatment."""
    obs = potassium(6.4, "2020-01-01T08:00:00Z", "k", note=[{"text": note}])
    found = codes(cards(client, request([obs])))
    assert ("possible_pseudohyperkalemia" in found) == haemolysed


def test_a_coded_haemolysed_specimen_flags_the_panel(client):
    specimen = us_core("Specimen-example-serum-hemolyzed")
    specimen["condition"] = [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0493", "code": "HEM"}]}]
    obs = potassium(5.9, "2020-01-01T08:00:00Z", "k", specimen={"reference": f"Specimen/{specimen['id']}"})
    found = codes(cards(client, request([obs, specimen])))
    assert "possible_pseudohyperkalemia" in found


@pytest.mark.parametrize(
    "form",
    ["https://ehr.example.org/fhir/{kind}/{id}", "{kind}/{id}/_history/2", "urn:uuid:{id}"],
)
def test_specimen_and_medication_references_in_their_other_forms_are_followed(client, form):
    """References are written absolute, versioned or as a bundle's urn:uuid: the haemolysed
    specimen still flags the potassium, and the referenced Medication (hydrochlorothiazide,
    in place of US Core's nizatidine) is still the order's drug."""
    specimen = us_core("Specimen-example-serum-hemolyzed")
    specimen["condition"] = [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0493", "code": "HEM"}]}]
    reference = form.format(kind="Specimen", id=specimen["id"])
    obs = potassium(5.9, "2020-01-01T08:00:00Z", "k", specimen={"reference": reference})
    order = us_core("medicationrequest-referenced-oral-axid")
    order["medicationReference"] = {"reference": form.format(kind="Medication", id="uscore-med2")}
    medication = {"resourceType": "Medication", "id": "uscore-med2", "code": {"text": "hydrochlorothiazide 25 mg"}}
    found = cards(client, request([obs, specimen], meds=[order, medication]))
    assert "possible_pseudohyperkalemia" in codes(found)
    low = cards(client, request([potassium(3.1, "2020-01-01T08:00:00Z", "k")], meds=[order, medication]))
    assert "diuretic_associated_losses" in codes(low)


def test_a_lipemic_specimen_is_not_haemolysed(client):
    """US Core's 'Specimen-example-serum-hemolyzed' is in fact coded lipemic (118127007)."""
    specimen = us_core("Specimen-example-serum-hemolyzed")
    obs = potassium(5.9, "2020-01-01T08:00:00Z", "k", specimen={"reference": f"Specimen/{specimen['id']}"})
    assert "possible_pseudohyperkalemia" not in codes(cards(client, request([obs, specimen])))


def test_an_earlier_haemolysed_specimen_does_not_flag_todays_panel(client):
    old = potassium(6.1, "2019-01-01T08:00:00Z", "k-old", note=[{"text": "Grossly hemolyzed specimen"}])
    new = potassium(5.9, "2020-01-01T08:00:00Z", "k-new")
    found = codes(cards(client, request([old, new])))
    assert "hemolyzed_specimen" not in found and "possible_pseudohyperkalemia" not in found


# 4. a missing or failed medication prefetch is said


@pytest.mark.parametrize("meds", ["missing", "outcome"])
def test_a_missing_or_failed_medication_prefetch_gets_a_card(client, meds):
    body = request([potassium(3.1, "2020-01-01T08:00:00Z", "k")], meds=[])
    if meds == "missing":
        del body["prefetch"]["meds"]
    else:
        body["prefetch"]["meds"] = {
            "resourceType": "OperationOutcome",
            "issue": [{"severity": "error", "code": "timeout", "diagnostics": "query timed out"}],
        }
    found = cards(client, body)
    card = next(c for c in found if c["summary"].startswith("Medication list not available"))
    assert "rules not assessed" in card["summary"]
    assert "Low potassium despite a potassium supplement" in card["detail"]
    if meds == "outcome":
        assert "query timed out" in card["detail"]


def test_a_failed_labs_prefetch_gets_a_card_not_an_empty_answer(client):
    body = request([])
    body["prefetch"]["labs"] = {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": "exception"}],
    }
    found = cards(client, body)
    assert [c["summary"] for c in found] == ["Laboratory results not available"]


# 5. children


def test_us_core_child_gets_one_info_card(client):
    child = us_core("patient-child-example")
    found = cards(client, request([potassium(3.0, "2024-01-01T08:00:00Z", "k")], patient=child))
    assert len(found) == 1 and found[0]["indicator"] == "info"
    assert "adult" in found[0]["summary"]


# 6. subject


def test_another_patients_result_is_excluded_and_named(client):
    other = potassium(6.9, "2020-01-01T08:00:00Z", "k-other", subject={"reference": "Patient/someone-else"})
    found = cards(client, request([other]))
    assert not any(c["indicator"] == "critical" for c in found)
    assert "Observation/k-other" in data_card(found) and "another patient" in data_card(found)


@pytest.mark.parametrize(
    ("reference", "ours"),
    [
        ("Patient/example/_history/3", True),  # a versioned reference to this patient
        ("https://ehr.example.org/fhir/Patient/example/_history/3", True),
        ("Patient/someone-else/_history/3", False),
        ("Group/example", False),
    ],
)
def test_a_versioned_subject_reference_is_this_patient(client, reference, ours):
    obs = potassium(6.9, "2020-01-01T08:00:00Z", "k-v", subject={"reference": reference})
    found = cards(client, request([obs]))
    assert ("hyperkalemia" in codes(found)) == ours
    assert ("another patient" in data_card(found)) != ours


def test_synthea_urn_uuid_subject_is_this_patient(client):
    patient = next(e["resource"] for e in SYNTHEA["entry"] if e["resource"]["resourceType"] == "Patient")
    labs = [e["resource"] for e in SYNTHEA["entry"] if e["resource"]["resourceType"] == "Observation"]
    found = cards(client, request(labs, patient=patient, meds=[]))
    assert "another patient" not in data_card(found)


# 7. shapes real servers send


def test_patient_as_a_searchset_bundle(client):
    child = us_core("patient-child-example")
    body = request([potassium(3.0, "2024-01-01T08:00:00Z", "k")], patient=child)
    body["prefetch"]["patient"] = bundle(child)
    assert "adult" in cards(client, body)[0]["summary"]


def test_medication_statement_and_references_are_read(client):
    furosemide = {
        "coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "4603"}],
        "text": "furosemide",
    }
    statement = {
        "resourceType": "MedicationStatement",
        "id": "ms",
        "status": "active",
        "medicationCodeableConcept": furosemide,
    }
    contained = us_core("medicationrequest-contained-oral-axid")
    contained["contained"][0]["code"] = furosemide
    referenced = us_core("medicationrequest-referenced-oral-axid")
    medication = {"resourceType": "Medication", "id": "uscore-med2", "code": {"text": "hydrochlorothiazide 25 mg"}}
    labs = [potassium(3.1, "2020-01-01T08:00:00Z", "k")]
    for meds in ([statement], [contained], [referenced, medication]):
        found = cards(client, request(labs, meds=meds))
        assert "diuretic_associated_losses" in codes(found), meds[0]["resourceType"]


def test_a_stopped_medication_statement_is_not_current(client):
    statement = {
        "resourceType": "MedicationStatement",
        "id": "ms",
        "status": "stopped",
        "medicationCodeableConcept": {"text": "furosemide 40 mg"},
    }
    found = cards(client, request([potassium(3.1, "2020-01-01T08:00:00Z", "k")], meds=[statement]))
    assert "diuretic_associated_losses" not in codes(found)
    assert "1 stopped" in data_card(found)


def test_loinc_ucum_and_rxnorm_written_as_hl7_oids_are_read(client):
    """Senders converted from CDA or HL7 v2 write code systems as OIDs (LOINC
    2.16.840.1.113883.6.1, UCUM .6.8, RxNorm .6.88): the potassium, its unit and the
    furosemide order are read, not passed over as another test or an unknown drug."""
    obs = potassium(3.1, "2020-01-01T08:00:00Z", "k-oid")
    obs["code"]["coding"][0]["system"] = "urn:oid:2.16.840.1.113883.6.1"
    obs["valueQuantity"] = {
        "value": 3.1,
        "unit": "millimole per liter",
        "system": "urn:oid:2.16.840.1.113883.6.8",
        "code": "mmol/L",
    }
    order = us_core("medicationrequest-contained-oral-axid")
    order["contained"][0]["code"] = {"coding": [{"system": "urn:oid:2.16.840.1.113883.6.88", "code": "4603"}]}
    found = cards(client, request([obs], meds=[order]))
    assert {"hypokalemia", "diuretic_associated_losses"} <= codes(found)
    assert "no LOINC code" not in data_card(found)


def test_an_order_not_to_give_a_drug_is_not_read_as_taking_it(client):
    """MedicationRequest.doNotPerform: an active order *not* to give furosemide (US Core's
    referenced example, with the flag) must not make the potassium a diuretic finding."""
    order = us_core("medicationrequest-contained-oral-axid")
    order["contained"][0]["code"] = {"text": "furosemide 40 mg"}
    order["doNotPerform"] = True
    found = cards(client, request([potassium(3.1, "2020-01-01T08:00:00Z", "k")], meds=[order]))
    assert "diuretic_associated_losses" not in codes(found)
    assert "1 do-not-perform" in data_card(found)
    order["doNotPerform"] = False
    found = cards(client, request([potassium(3.1, "2020-01-01T08:00:00Z", "k")], meds=[order]))
    assert "diuretic_associated_losses" in codes(found)


def test_a_blank_medication_text_falls_back_to_the_coding(client):
    """`text: " "` once hid the whole MedicationRequest (and its critical card)."""
    order = us_core("medicationrequest-coded-oral-axid")
    order["medicationCodeableConcept"] = {
        "text": " ",
        "coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "4603", "display": "furosemide"}],
    }
    found = cards(client, request([potassium(2.3, "2020-01-01T08:00:00Z", "k")], meds=[order]))
    assert "diuretic_associated_losses" in codes(found) and "hypokalemia" in codes(found)


# 8. RxNorm clinical-drug codes


def coded_order(code: str) -> dict:
    """US Core's coded MedicationRequest with its coding replaced by a bare RxNorm code."""
    order = us_core("medicationrequest-coded-oral-axid")
    order["medicationCodeableConcept"] = {
        "coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": code}]
    }
    return order


def test_a_code_only_clinical_drug_order_is_recognised(client):
    """RxNorm 197770 (Hydrochlorothiazide 50 MG Oral Tablet) was 'Medication not recognised'."""
    found = cards(client, request([potassium(3.1, "2020-01-01T08:00:00Z", "k")], meds=[coded_order("197770")]))
    assert "diuretic_associated_losses" in codes(found)
    assert "RxNorm 197770" not in data_card(found)


def test_an_unmapped_clinical_drug_code_is_named_as_not_recognised(client):
    found = cards(client, request([potassium(3.1, "2020-01-01T08:00:00Z", "k")], meds=[coded_order("99999999")]))
    assert "diuretic_associated_losses" not in codes(found)
    assert "RxNorm 99999999" in "\n".join(c["detail"] for c in found)


# serial panels: earlier Observations are history, MedicationRequest.authoredOn a start


def test_earlier_observations_are_history_and_an_order_time_is_a_start(client):
    """K 3.0 yesterday, KCl ordered 20 h ago, K 3.1 now: potassium still low despite replacement."""
    order = coded_order("8591")  # potassium chloride (ingredient)
    # US Core's dosage timing starts in 2008 (boundsPeriod, read first): drop it so that the
    # order's own time is the start
    order.pop("dosageInstruction")
    order["authoredOn"] = "2020-01-01T12:00:00Z"
    labs = [potassium(3.0, "2019-12-31T08:00:00Z", "k-before"), potassium(3.1, "2020-01-02T08:00:00Z", "k-now")]
    found = cards(client, request(labs, meds=[order]))
    assert "persistent_hypokalemia_despite_replacement" in codes(found)
    card = next(
        c for c in found if c["source"].get("topic", {}).get("code") == "persistent_hypokalemia_despite_replacement"
    )
    assert "48 h before" in card["detail"].replace("\\", "")  # the earlier value it compared, with its time
    # started 1 h before the latest potassium: too early to call it persistent (4 h)
    order["authoredOn"] = "2020-01-02T07:00:00Z"
    assert "persistent_hypokalemia_despite_replacement" not in codes(cards(client, request(labs, meds=[order])))


def test_a_refused_earlier_result_drops_only_its_specimen(client):
    labs = [
        potassium(30.0, "2019-12-31T08:00:00Z", "k-implausible"),
        potassium(3.1, "2020-01-02T08:00:00Z", "k-now"),
    ]
    found = cards(client, request(labs, meds=[]))
    assert "hypokalemia" in codes(found)
    assert "(an earlier result): 30 mmol/L is outside the plausible range" in data_card(found)


# 9. LOINC codes real systems use


def test_synthea_calcium_and_glucose_codes_are_requested_and_read(client):
    labs_query = next(s for s in client.get("/cds-services").json()["services"])["prefetch"]["labs"]
    for code in ("49765-1", "2339-0", "32713-0", "39789-3"):
        assert f"http://loinc.org|{code}" in labs_query
    patient = next(e["resource"] for e in SYNTHEA["entry"] if e["resource"]["resourceType"] == "Patient")
    labs = [e["resource"] for e in SYNTHEA["entry"] if e["resource"]["resourceType"] == "Observation"]
    detail = data_card(cards(client, request(labs, patient=patient, meds=[])))
    assert "49765-1): not an analyte" not in detail and "2339-0): not an analyte" not in detail
    assert "measured in blood (mass) (LOINC 49765-1)" in detail


# 10. no noise on a chart open


def test_a_synthea_chart_open_is_not_noise(client):
    patient = next(e["resource"] for e in SYNTHEA["entry"] if e["resource"]["resourceType"] == "Patient")
    labs = [e["resource"] for e in SYNTHEA["entry"] if e["resource"]["resourceType"] == "Observation"]
    found = cards(client, request(labs, patient=patient, meds=[]))
    detail = data_card(found)
    assert "an older" not in detail and "results[" not in detail
    assert len(detail) < 3000, len(detail)
    assert all(len(c["summary"]) <= 140 and not c["summary"].endswith("…") for c in found)


# 11. a real prefetch is not too big


def test_a_prefetch_of_ordinary_size_is_accepted_and_an_oversized_one_is_413(client):
    labs = [potassium(4.0 + i / 100, f"2020-01-{1 + i % 28:02d}T08:00:00Z", f"k{i}") for i in range(50)]
    body = request(labs)
    assert len(json.dumps(body)) > 64 * 1024
    assert client.post("/cds-services/electrolyte-panel", json=body).status_code == 200

    def chunks():
        yield b'{"hook": "patient-view", "pad": "'
        for _ in range(9 * 1024):
            yield b"x" * 1024
        yield b'"}'

    response = client.post(
        "/cds-services/electrolyte-panel", content=chunks(), headers={"content-type": "application/json"}
    )
    assert response.status_code == 413


# 13. the laboratory's flags


def test_laboratory_critical_flag_is_shown_when_our_limits_disagree(client):
    obs = potassium(6.2, "2020-01-01T08:00:00Z", "k-hh")
    obs["interpretation"] = [
        {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation", "code": "HH"}]}
    ]
    detail = data_card(cards(client, request([obs])))
    assert "Observation/k-hh" in detail and "critically high (HH)" in detail


def test_a_preliminary_result_is_noted(client):
    obs = potassium(3.1, "2020-01-01T08:00:00Z", "k-pre", status="preliminary")
    assert "a preliminary result, not final" in data_card(cards(client, request([obs])))


# 15. feedback


def test_feedback_per_the_spec_and_counted(client):
    found = cards(client, request([potassium(3.1, "2020-01-01T08:00:00Z", "k")], meds=[]))
    card = next(c for c in found if c["source"].get("topic", {}).get("code") == "hypokalemia")
    item = {
        "card": card["uuid"],
        "outcome": "overridden",
        "outcomeTimestamp": "2026-12-01T10:00:00Z",
        "overrideReason": {"reason": {"code": "already-addressed"}},
    }
    assert client.post("/cds-services/nope/feedback", json={"feedback": [item]}).status_code == 404
    assert (
        client.post("/cds-services/electrolyte-panel/feedback", json={"feedback": [{"card": "x"}]}).status_code == 400
    )
    assert client.post("/cds-services/electrolyte-panel/feedback", json={"feedback": [item]}).json() == {"received": 1}
    rows = client.get("/cds-services/feedback-summary").json()["feedback"]
    expected = {"service": "electrolyte-panel", "card": "hypokalemia", "outcome": "overridden"}
    row = next(r for r in rows if r["card"] == "hypokalemia")
    assert expected.items() <= row.items() and row["override_reason"] == "already-addressed"


# order-sign


def test_order_sign_names_the_drafted_drug_as_new(client):
    labs = [potassium(5.8, "2020-01-01T08:00:00Z", "k")]
    creatinine = us_core("observation-serum-creatinine")
    creatinine.update(effectiveDateTime="2020-01-01T08:00:00Z")
    creatinine["valueQuantity"]["value"] = 2.0
    draft = {
        "resourceType": "MedicationRequest",
        "id": "draft-spiro",
        "status": "draft",
        "intent": "order",
        "medicationCodeableConcept": {"text": "spironolactone 25 mg tablet"},
    }
    body = request([*labs, creatinine], meds=[], hook="order-sign")
    body["context"]["draftOrders"] = bundle(draft)
    found = cards(client, body, "electrolyte-panel-order-sign")
    risk = next(c for c in found if c["source"].get("topic", {}).get("code") == "hyperkalemia_risk_medications")
    assert risk["summary"].startswith("New order spironolactone")
    assert "overrideReasons" in risk
    # a finding that concerns no drafted drug and is not critical is not repeated at signing
    assert "hyperkalemia" not in codes(found)


# 12. mutation fuzz: one field of a real resource changed, never a server error

MUTATIONS = [None, "", " ", "x" * 10_000, 0, -1, 1e308, True, [], {}, [1, "a"], {"a": {"b": [None]}}, "19500101"]


def _paths(value, prefix=()):
    if isinstance(value, dict):
        for k, v in value.items():
            yield (*prefix, k)
            yield from _paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value[:3]):
            yield (*prefix, i)
            yield from _paths(v, (*prefix, i))


def _set(doc, path, value):
    for key in path[:-1]:
        doc = doc[key]
    doc[path[-1]] = value


def test_one_field_mutations_of_real_resources_never_give_a_server_error(client):
    base = request(
        [
            us_core("observation-serum-potassium"),
            us_core("observation-serum-calcium"),
            us_core("Specimen-example-serum-hemolyzed"),
        ],
        patient=us_core("patient-child-example") | {"birthDate": "1950-01-01"},
        meds=[us_core("medicationrequest-referenced-oral-axid"), us_core("medicationrequest-contained-oral-axid")],
    )
    paths = [p for p in _paths(base["prefetch"]) if "text" not in p and "extension" not in p]
    rng = random.Random(20261201)
    sent = errors = 0
    for path in paths:
        for value in rng.sample(MUTATIONS, 4):
            body = copy.deepcopy(base)
            _set(body["prefetch"], path, value)
            response = client.post("/cds-services/electrolyte-panel", json=body)
            sent += 1
            if response.status_code >= 500:
                errors += 1
            assert response.status_code < 500, (path, value, response.text[:300])
    assert sent > 400 and errors == 0


def test_low_potassium_without_magnesium_suggests_ordering_it(client):
    found = cards(client, request([potassium(3.1, "2020-01-01T08:00:00Z", "k")], meds=[]))
    card = next(c for c in found if c["source"].get("topic", {}).get("code") == "hypokalemia_magnesium_unmeasured")
    action = card["suggestions"][0]["actions"][0]
    assert action["type"] == "create"
    assert action["resource"]["resourceType"] == "ServiceRequest" and action["resource"]["status"] == "draft"
    assert action["resource"]["code"]["coding"][0] == {
        "system": "http://loinc.org",
        "code": "19123-9",
        "display": "Magnesium [Mass/volume] in Serum or Plasma",
    }
    assert action["resource"]["subject"] == {"reference": "Patient/example"}


def test_every_card_names_the_ruleset_version_and_hash(client, interpreter):
    found = cards(client, request([potassium(3.1, "2020-01-01T08:00:00Z", "k")]))
    rs = interpreter.ruleset
    assert found and all(f"v{rs.version}" in c["detail"] and rs.sha256[:12] in c["detail"] for c in found)


# 16. a panel sent as one Observation with a component per test


def panel_with_components(*components: dict, **changes) -> dict:
    """US Core's potassium example made into a basic metabolic panel (LOINC 51990-0) whose
    results are components: status, time, subject and specimen stay the panel's."""
    obs = potassium(3.0, "2020-01-01T08:00:00Z", "bmp", **changes)
    obs["code"] = {"coding": [{"system": "http://loinc.org", "code": "51990-0"}], "text": "Basic metabolic panel"}
    k = {key: obs.pop(key) for key in ("valueQuantity", "referenceRange")}
    k["code"] = us_core("observation-serum-potassium")["code"]
    obs["component"] = [k, *components]
    return obs


def component(loinc: str, value: float | None, unit: str) -> dict:
    found = {"code": {"coding": [{"system": "http://loinc.org", "code": loinc}]}}
    if value is None:
        found["dataAbsentReason"] = {"coding": [{"code": "error"}]}
    else:
        found["valueQuantity"] = {"value": value, "unit": unit, "system": UCUM, "code": unit}
    return found


def test_results_sent_as_components_of_one_panel_observation_are_read(client):
    """An EHR may send a chemistry panel as one Observation with a component per result:
    its potassium and magnesium are interpreted (low K with low Mg), a component of another
    test is passed over, and the panel is not counted as a test this service ignores."""
    obs = panel_with_components(component("19123-9", 1.3, "mg/dL"), component("718-7", 13.0, "g/dL"))
    found = cards(client, request([obs]))
    assert "hypokalemia_with_hypomagnesemia" in codes(found)
    assert "51990-0" not in data_card(found)


def test_an_unusable_component_is_named_and_an_unusable_panel_names_each_result(client):
    obs = panel_with_components(component("19123-9", None, "mg/dL"))
    detail = data_card(cards(client, request([obs])))
    assert "Observation/bmp component 2 (LOINC 19123-9): no numeric valueQuantity.value" in detail
    obs = panel_with_components(component("19123-9", 1.3, "mg/dL"), status="entered-in-error")
    found = cards(client, request([obs]))
    detail = data_card(found)
    assert "hypokalemia_with_hypomagnesemia" not in codes(found)
    assert "Observation/bmp component 1 (LOINC 2823-3): status 'entered-in-error'" in detail
    assert "Observation/bmp component 2 (LOINC 19123-9): status 'entered-in-error'" in detail


@pytest.mark.parametrize(
    "hostile",
    [
        "not a list",
        [None, 3, "x", []],
        [{"code": "2823-3", "valueQuantity": 3.0}],
        [{"code": {"coding": {"system": "http://loinc.org", "code": "2823-3"}}, "valueQuantity": {"value": True}}],
        [{"code": {"coding": [{"system": "http://loinc.org", "code": "2823-3"}]}, "component": [{"code": {}}]}],
    ],
)
def test_hostile_components_never_give_a_server_error(client, hostile):
    obs = panel_with_components()
    obs["component"] = hostile
    assert isinstance(cards(client, request([obs])), list)
