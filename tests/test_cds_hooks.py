"""CDS Hooks 2.0: discovery, cards from realistic FHIR R4, errors per the spec."""

from __future__ import annotations

import copy
import json

import pytest
from fastapi.testclient import TestClient

from interpret.web.app import create_app
from tests.conftest import ROOT

REQUEST = json.loads((ROOT / "tests/fixtures/fhir/patient-view.json").read_text())


@pytest.fixture(scope="module")
def client(interpreter):
    return TestClient(create_app(interpreter))


def test_discovery(client):
    services = client.get("/cds-services").json()["services"]
    hooks = {s["hook"]: s for s in services}
    assert set(hooks) == {"patient-view", "order-select", "order-sign"}
    service = hooks["patient-view"]
    assert {"id", "description", "prefetch", "title"} <= set(service)
    assert "http://loinc.org|2823-3" in service["prefetch"]["labs"]
    assert service["prefetch"]["patient"] == "Patient/{{context.patientId}}"


def test_patient_view_cards(client):
    response = client.post("/cds-services/electrolyte-panel", json=REQUEST)
    assert response.status_code == 200
    cards = response.json()["cards"]
    by_code = {c["source"].get("topic", {}).get("code"): c for c in cards}
    # latest K (3.0, lab range 3.5-5.1) with Mg 1.3 mg/dL on furosemide (RxNorm 4603)
    assert by_code["hypokalemia_with_hypomagnesemia"]["indicator"] == "warning"
    assert by_code["diuretic_associated_losses"]["indicator"] == "warning"
    assert by_code["hypokalemia"]["indicator"] == "info"  # advisory -> info
    for card in cards:
        assert len(card["summary"]) < 140
        assert card["uuid"] and card["source"]["label"]
        assert "decision support" in card["detail"].lower()
    detail = by_code["hypokalemia_with_hypomagnesemia"]["detail"]
    assert "Evidence" in detail and "Huang" in detail
    assert by_code["hypokalemia"]["source"]["url"].endswith("/rules#hypokalemia")


def test_unusable_observations_are_named(client):
    cards = client.post("/cds-services/electrolyte-panel", json=REQUEST).json()["cards"]
    unused = next(c for c in cards if c["summary"] == "Some data could not be used")
    assert "Observation/na" in unused["detail"]
    # haemoglobin is another test: counted by its LOINC code, not listed as an error
    assert "1 Observations of tests this service does not interpret \\(LOINC 718\\-7\\)" in unused["detail"]
    # the older potassium is history, not an error: counted, not listed as unusable
    assert "Observation/k-old" not in unused["detail"]
    assert "earlier results of the same analytes are read as history" in unused["detail"]


def test_user_text_is_escaped_in_markdown(client):
    cards = client.post("/cds-services/electrolyte-panel", json=REQUEST).json()["cards"]
    unrecognised = next(c for c in cards if c["source"].get("topic", {}).get("code") == "unrecognized_medication")
    assert "<img" not in unrecognised["detail"] and "&lt;img" in unrecognised["detail"]


def test_missing_prefetch_is_412_operation_outcome(client):
    request = copy.deepcopy(REQUEST)
    del request["prefetch"]["labs"]
    response = client.post("/cds-services/electrolyte-panel", json=request)
    assert response.status_code == 412
    assert response.json()["resourceType"] == "OperationOutcome"


def test_no_labs_gives_an_explaining_card(client):
    request = copy.deepcopy(REQUEST)
    request["prefetch"]["labs"] = {"resourceType": "Bundle", "type": "searchset"}
    cards = client.post("/cds-services/electrolyte-panel", json=request).json()["cards"]
    assert [c["summary"] for c in cards] == ["No usable electrolyte results to interpret"]


def test_order_select_includes_draft_orders(client):
    request = copy.deepcopy(REQUEST)
    request["hook"] = "order-select"
    request["prefetch"]["meds"] = {"resourceType": "Bundle", "type": "searchset"}
    request["context"]["draftOrders"] = {
        "resourceType": "Bundle",
        "entry": [
            {
                "resource": {
                    "resourceType": "MedicationRequest",
                    "id": "draft-1",
                    "status": "draft",
                    "medicationCodeableConcept": {"text": "potassium chloride 20 mEq"},
                }
            }
        ],
    }
    cards = client.post("/cds-services/electrolyte-panel-order-select", json=request).json()["cards"]
    codes = {c["source"].get("topic", {}).get("code") for c in cards}
    assert "refractory_hypokalemia" in codes


def test_wrong_hook_and_unknown_service(client):
    assert client.post("/cds-services/nope", json=REQUEST).status_code == 404
    wrong = dict(REQUEST, hook="order-sign")
    assert client.post("/cds-services/electrolyte-panel", json=wrong).status_code == 400


def test_feedback_is_accepted(client):
    body = {"feedback": [{"card": "abc", "outcome": "overridden", "outcomeTimestamp": "2026-11-23T10:00:00Z"}]}
    assert client.post("/cds-services/electrolyte-panel/feedback", json=body).json() == {"received": 1}


def test_a_child_gets_no_adult_cards_but_one_card_that_says_why(client):
    request = copy.deepcopy(REQUEST)
    request["prefetch"]["patient"]["birthDate"] = "2015-01-01"
    cards = client.post("/cds-services/electrolyte-panel", json=request).json()["cards"]
    assert len(cards) == 1 and cards[0]["indicator"] == "info"
    assert "adult reference intervals only" in cards[0]["summary"]
    assert "11 years old" in cards[0]["detail"]


def _with_medication(request, name, rxnorm, route):
    """The fixture's request with one more active MedicationRequest given by `route`."""
    request = copy.deepcopy(request)
    coding = [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": rxnorm, "display": name}]
    dosage = {"route": {"coding": [{"system": "http://snomed.info/sct", "code": route[0], "display": route[1]}]}}
    resource = {
        "resourceType": "MedicationRequest",
        "id": "mr-route",
        "status": "active",
        "intent": "order",
        "medicationCodeableConcept": {"coding": coding},
        "dosageInstruction": [dosage],
        "subject": {"reference": "Patient/pt-1"},
    }
    request["prefetch"]["meds"]["entry"].append({"resource": resource})
    return request


def test_dosage_route_decides_whether_a_drug_acts_systemically(client):
    """Ciprofloxacin by mouth with low K is a QT risk; ciprofloxacin into the eye is not
    (the route is read from dosageInstruction, SNOMED CT display)."""

    def codes(route):
        request = _with_medication(REQUEST, "ciprofloxacin", "2551", route)
        cards = client.post("/cds-services/electrolyte-panel", json=request).json()["cards"]
        return {c["source"].get("topic", {}).get("code") for c in cards}

    assert "qt_risk_with_electrolyte_deficit" in codes(("26643006", "Oral route"))
    assert "qt_risk_with_electrolyte_deficit" not in codes(("54485002", "Ophthalmic route"))
