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


def call(fhir_server, allowed, token=TOKEN):
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
