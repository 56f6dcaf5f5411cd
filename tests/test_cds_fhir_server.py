"""The FHIR server fallback: a missing prefetch fetched from the EHR's FHIR server.

The server here is a small local HTTP server (loopback only) that answers FHIR searches over a
real Synthea patient (tests/fixtures/fhir/synthea) with search semantics: `patient`, `code`
(token list), `_count` paging with `Bundle.link` next, and a bearer token check. No FHIR server
package is installed for the tests (HAPI FHIR needs a JVM service and its own downloads).
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar
from urllib.parse import parse_qs, urlparse

import pytest
from fastapi.testclient import TestClient

from interpret.ruleset import default_ruleset
from interpret.web.app import create_app
from tests.conftest import ROOT

SYNTHEA = json.loads(
    (ROOT / "tests/fixtures/fhir/synthea/Brent_Beer_7dc94cc0-8c2e-4835-9994-cecbe894bcbf.json").read_text()
)
RESOURCES = [e["resource"] for e in SYNTHEA["entry"]]
PATIENT = next(r for r in RESOURCES if r["resourceType"] == "Patient")
TOKEN = "test-token-not-a-secret"


class FhirHandler(BaseHTTPRequestHandler):
    calls: ClassVar[list[str]] = []

    def log_message(self, *args):  # quiet
        pass

    def do_GET(self):
        FhirHandler.calls.append(self.path)
        if self.headers.get("Authorization") != f"Bearer {TOKEN}":
            return self._send(401, {"resourceType": "OperationOutcome", "issue": []})
        url = urlparse(self.path)
        parts = url.path.strip("/").split("/")[1:]  # after the base "fhir"
        query = parse_qs(url.query)
        if len(parts) == 2 and parts[0] == "Patient":
            return self._send(200, PATIENT) if parts[1] == PATIENT["id"] else self._send(404, {})
        kind = parts[0]
        found = [r for r in RESOURCES if r["resourceType"] == kind]
        if "patient" in query and query["patient"][0] != PATIENT["id"]:
            found = []
        if "code" in query:
            wanted = {c.split("|")[-1] for c in query["code"][0].split(",")}
            found = [r for r in found if {c["code"] for c in r["code"]["coding"]} & wanted]
        if "status" in query:
            found = [r for r in found if r.get("status") == query["status"][0]]
        count = min(int(query.get("_count", ["10"])[0]), 10)  # servers cap the page size
        offset = int(query.get("_offset", ["0"])[0])
        page = found[offset : offset + count]
        bundle = {
            "resourceType": "Bundle",
            "type": "searchset",
            "total": len(found),
            "entry": [{"resource": r} for r in page],
        }
        if offset + count < len(found):
            rest = {k: v[0] for k, v in query.items() if k != "_offset"}
            rest["_offset"] = str(offset + count)
            nxt = "&".join(f"{k}={v}" for k, v in rest.items())
            bundle["link"] = [{"relation": "next", "url": f"{self.server.base}/{kind}?{nxt}"}]
        return self._send(200, bundle)

    def _send(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/fhir+json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture(scope="module")
def fhir_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), FhirHandler)
    server.base = f"http://127.0.0.1:{server.server_address[1]}/fhir"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.base
    server.shutdown()


def call(fhir_server, allowed, token=TOKEN, prefetch=None):
    client = TestClient(create_app(fhir_servers=allowed))
    body = {
        "hook": "patient-view",
        "hookInstance": "0b5c9e44-4a70-4f4c-9a3e-0e4d3b4bdf5e",
        "fhirServer": fhir_server,
        "fhirAuthorization": {
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": 300,
            "scope": "patient/*.read",
            "subject": "cds",
        },
        "context": {"userId": "Practitioner/1", "patientId": PATIENT["id"]},
    }
    if prefetch is not None:
        body["prefetch"] = prefetch
    return client.post("/cds-services/electrolyte-panel", json=body)


def test_missing_prefetch_is_fetched_from_an_allowed_fhir_server(fhir_server):
    FhirHandler.calls.clear()
    response = call(fhir_server, [fhir_server])
    assert response.status_code == 200
    cards = response.json()["cards"]
    detail = "\n".join(c["detail"] for c in cards).replace("\\", "")
    # the Synthea patient's latest panel was read: its blood potassium is named as such
    assert "measured in blood (LOINC 6298-4)" in detail
    assert any(path.startswith("/fhir/Patient/") for path in FhirHandler.calls)
    assert any("_offset=" in path for path in FhirHandler.calls), "the next page was followed"


def test_a_server_the_site_did_not_allow_is_never_queried(fhir_server):
    FhirHandler.calls.clear()
    response = call(fhir_server, [])
    assert response.status_code == 412 and "--fhir-server" in response.text
    assert FhirHandler.calls == []


def test_a_refused_token_is_named_in_a_card(fhir_server):
    response = call(fhir_server, [fhir_server], token="wrong")
    assert response.status_code == 200
    summaries = [c["summary"] for c in response.json()["cards"]]
    assert summaries == ["Laboratory results not available"]
    assert "HTTP 401" in response.json()["cards"][0]["detail"]


def test_an_unreachable_server_is_named_not_a_server_error():
    response = call("http://127.0.0.1:9/fhir", ["http://127.0.0.1:9/fhir"])
    assert response.status_code == 200
    assert "not reachable" in response.json()["cards"][0]["detail"]


# the ruleset's analytes, as the service's own prefetch asks for them: 32 of the patient's 94
LOINC_CODES = ",".join(sorted({c for a in default_ruleset().analytes.values() for c in a.loinc}))


def _first_page(fhir_server: str, query: str) -> dict:
    """A search's first page as the EHR would send it in the prefetch (with its next link)."""
    import urllib.request

    request = urllib.request.Request(f"{fhir_server}/{query}", headers={"Authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(request) as response:
        return json.loads(response.read())


def _earlier(said: str) -> int:
    import re

    found = re.search(r"(\d+) earlier results of the same analytes", said)
    return int(found.group(1)) if found else 0


def call_with_prefetch(fhir_server, allowed, prefetch) -> str:
    """The cards' text for a call whose prefetch the EHR sent."""
    response = call(fhir_server, allowed, prefetch=prefetch)
    assert response.status_code == 200, response.text
    return "\n".join(c["detail"] for c in response.json()["cards"]).replace("\\", "")


def test_a_prefetch_sent_as_a_first_page_is_completed_or_said_to_be_partial(fhir_server):
    """An EHR may send a search's first page only (Bundle.link next): unread results or
    medications would silently change the cards. With FHIR server access the next pages are
    fetched; without it, the cards say what was not read."""
    labs = _first_page(fhir_server, f"Observation?patient={PATIENT['id']}&code={LOINC_CODES}&_count=10")
    assert any(link["relation"] == "next" for link in labs["link"]) and len(labs["entry"]) == 10
    prefetch = {"patient": PATIENT, "labs": labs, "meds": {"resourceType": "Bundle", "type": "searchset", "entry": []}}
    said = partial = call_with_prefetch(fhir_server, [], prefetch)
    assert "laboratory results: the EHR sent a first page (10 of 32 results; Bundle.link next)" in said
    assert "its next pages were not fetched" in said and "results beyond it were not read" in said
    FhirHandler.calls.clear()
    said = call_with_prefetch(fhir_server, [fhir_server], prefetch)
    assert any("_offset=" in path for path in FhirHandler.calls), "the next pages were fetched"
    assert "first page" not in said
    assert _earlier(said) > _earlier(partial)  # the later pages' results were read as history


def test_a_medication_prefetch_with_fewer_results_than_its_total_is_said_to_be_partial(fhir_server):
    meds = {"resourceType": "Bundle", "type": "searchset", "total": 7, "entry": []}
    labs = _first_page(fhir_server, f"Observation?patient={PATIENT['id']}&_count=10")
    labs.pop("link")
    labs["total"] = 10
    said = call_with_prefetch(fhir_server, [], {"patient": PATIENT, "labs": labs, "meds": meds})
    assert "medication list: the EHR sent 0 of 7 results" in said
    assert "a drug missing from this list may still be taken" in said
    said = call_with_prefetch(fhir_server, [fhir_server], {"patient": PATIENT, "labs": labs, "meds": meds})
    assert "its next pages could not be fetched (it gives no next page)" in said  # nothing to follow
