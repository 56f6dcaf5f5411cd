"""The JSON API, the form and the rules page through FastAPI's TestClient."""

from __future__ import annotations

import json
import logging

import pytest
from fastapi.testclient import TestClient

from interpret.web.app import BODY_LIMIT, create_app
from tests.conftest import ROOT

SEED = json.loads((ROOT / "examples/low-k-low-mg-loop-diuretic.json").read_text())


@pytest.fixture(scope="module")
def client(interpreter):
    return TestClient(create_app(interpreter))


def test_interpret_json(client, interpreter):
    response = client.post("/api/v1/interpret", json=SEED)
    assert response.status_code == 200
    body = response.json()
    codes = {f["code"] for f in body["findings"]}
    assert {"hypokalemia_with_hypomagnesemia", "diuretic_associated_losses"} <= codes
    assert body["ruleset"]["sha256"] == interpreter.ruleset.sha256 and body["disclaimer"]


def test_interpret_html_when_asked(client):
    response = client.post("/api/v1/interpret", json=SEED, headers={"Accept": "text/html"})
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    assert "Low potassium with low magnesium" in response.text and "decision support" in response.text.lower()


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"results": [{"analyte": "potassium", "value": 3, "unit": "furlongs"}]}, "results[0].unit"),
        ({"results": [{"analyte": "potassium", "value": "x", "unit": "mmol/L"}]}, "results[0].value"),
        ({"results": [{"analyte": "potassium", "unit": "mmol/L"}]}, "results[0].value"),
        ({"results": []}, "results"),
        ({"results": [{"analyte": "k", "value": 4, "unit": "mmol/L"}], "patient": {"age": 12}}, "patient.age"),
    ],
)
def test_invalid_panels_get_422_with_json_paths(client, body, loc):
    response = client.post("/api/v1/interpret", json=body)
    assert response.status_code == 422
    assert loc in [e["loc"] for e in response.json()["detail"]]


def test_malformed_json_is_422(client):
    response = client.post("/api/v1/interpret", content=b"{not json", headers={"content-type": "application/json"})
    assert response.status_code == 422


def test_oversized_body_is_413(client):
    big = b'{"results": [], "pad": "' + b"x" * (BODY_LIMIT + 10) + b'"}'
    response = client.post("/api/v1/interpret", content=big, headers={"content-type": "application/json"})
    assert response.status_code == 413


def test_rules_catalogue_and_health(client, interpreter):
    catalogue = client.get("/api/v1/rules").json()
    assert catalogue["sha256"] == interpreter.ruleset.sha256
    entry = next(r for r in catalogue["rules"] if r["code"] == "refractory_hypokalemia")
    assert "potassium is below its reference interval" in entry["logic"] and entry["references"]
    assert client.get("/healthz").json()["status"] == "ok"
    page = client.get("/rules")
    assert page.status_code == 200 and 'id="refractory_hypokalemia"' in page.text


def test_openapi_and_docs(client):
    schema = client.get("/openapi.json").json()
    assert "/api/v1/interpret" in schema["paths"] and "/cds-services" in schema["paths"]
    docs = client.get("/docs")
    assert docs.status_code == 200
    # offline: every script and stylesheet the page loads is this server's own
    import re

    loaded = re.findall(r'(?:src|href)="([^"]+)"', docs.text)
    assert loaded and all(u.startswith("/docs-assets/") for u in loaded), loaded
    for url in loaded:
        asset = client.get(url)
        assert asset.status_code == 200 and len(asset.content) > 100, url
    assert "cdn" not in docs.headers["content-security-policy"]


def test_security_headers(client):
    for path in ("/", "/healthz", "/rules"):
        headers = client.get(path).headers
        assert "frame-ancestors 'none'" in headers["content-security-policy"]
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["referrer-policy"] == "no-referrer"


def test_cors_is_closed_by_default_and_opt_in(interpreter):
    closed = TestClient(create_app(interpreter))
    preflight = {"Origin": "https://sandbox.cds-hooks.org", "Access-Control-Request-Method": "POST"}
    assert (
        "access-control-allow-origin"
        not in closed.options("/cds-services/electrolyte-panel", headers=preflight).headers
    )
    opened = TestClient(create_app(interpreter, cors_origins=["https://sandbox.cds-hooks.org"]))
    response = opened.options("/cds-services/electrolyte-panel", headers=preflight)
    assert response.headers["access-control-allow-origin"] == "https://sandbox.cds-hooks.org"


def test_form_page_and_examples(client):
    page = client.get("/")
    assert page.status_code == 200 and "<form" in page.text and "decision support" in page.text.lower()
    filled = client.get("/?example=low-k-low-mg-loop-diuretic").text
    assert 'value="3.0"' in filled and "furosemide 40 mg PO daily" in filled


def test_every_example_file_is_a_form_example_with_the_same_panel(client):
    """The form's examples are the files of examples/ (they had drifted: the form's antacid
    example lacked Milk of Magnesia), each linked from the page; an unknown name is said."""
    from interpret.web.form import EXAMPLE_LABELS

    files = {p.stem for p in (ROOT / "examples").glob("*.json")} - {"invalid-unit"}
    assert set(EXAMPLE_LABELS) == files
    page = client.get("/").text
    assert all(f'/?example={name}"' in page for name in files)
    antacid = client.get("/?example=ckd-high-magnesium-antacid").text
    assert "Milk of Magnesia 30 mL at night" in antacid and 'value="1.45"' in antacid
    assert 'value="6.3"' in client.get("/?example=haemolysed-high-potassium").text  # a LOINC-coded result
    unknown = client.get("/?example=haemolysed-high-k").text
    assert "There is no example named &#39;haemolysed-high-k&#39;" in unknown


def test_the_form_can_say_the_medication_list_is_unknown(client):
    """An empty box was always "no medications": the medication rules then went silent when
    the clinician simply did not know the list. Unknown leaves them not assessed."""
    panel = {k: v for k, v in FORM.items() if k != "medications"}
    known = client.post("/", data={**panel, "medications_known": "listed"}).text
    unknown = client.post("/", data={**panel, "medications_known": "unknown"}).text
    assert "No medication list was supplied" in unknown and "medication list: not supplied" in unknown
    assert "The medication list was empty" in known and "not supplied" not in known


FORM = {
    "potassium": "3,0",
    "potassium_unit": "mmol/L",
    "magnesium": "1.3",
    "magnesium_unit": "mg/dL",
    "creatinine": "88",
    "creatinine_unit": "umol/L",
    "age": "72",
    "sex": "female",
    "medications": "furosemide 40 mg PO daily\n<script>alert(1)</script>",
}


def test_form_submission_shows_report_and_keeps_values(client):
    page = client.post("/", data=FORM)
    assert page.status_code == 200
    assert "Low potassium with low magnesium" in page.text
    assert 'value="3,0"' in page.text  # the form is kept as typed
    assert "<script>alert(1)</script>" not in page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text


def test_form_error_is_shown_at_its_field(client):
    page = client.post("/", data={**FORM, "potassium_unit": "furlongs", "age": "12"})
    assert page.status_code == 422
    assert 'id="potassium-error"' in page.text and "not a unit for potassium" in page.text
    assert 'id="age-error"' in page.text
    assert 'value="1.3"' in page.text  # other values kept


def test_no_patient_data_in_logs(client, caplog):
    caplog.set_level(logging.DEBUG)
    client.post("/api/v1/interpret", json=SEED)
    client.post("/", data=FORM)
    client.post("/api/v1/interpret", json={"results": [{"analyte": "potassium", "value": 44.4, "unit": "mmol/L"}]})
    logged = "\n".join(r.getMessage() for r in caplog.records)
    for secret in ("furosemide", "3.0", "1.3", "44.4", "alert(1)", "Bactrim"):
        assert secret not in logged


def test_batch_upload_returns_output_sidecar_and_summary(client):
    import io
    import zipfile

    csv_text = "id,potassium,potassium_unit,magnesium,magnesium_unit\nr1,3.0,mmol/L,0.5,mmol/L\nr2,x,mmol/L,,\n"
    response = client.post("/batch", files={"file": ("lab.csv", csv_text, "text/csv")}, data={"id_column": "id"})
    assert response.status_code == 200 and response.headers["content-type"] == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(response.content))
    assert set(archive.namelist()) == {"output.csv", "output.csv.json", "summary.html"}
    output = archive.read("output.csv").decode()
    assert output.count("\n") == 3 and "hypokalemia_with_hypomagnesemia" in output and "'x' is not a number" in output
    assert "decision support" in archive.read("summary.html").decode().lower()


def test_batch_upload_refuses_identifiers_with_a_message(client):
    response = client.post(
        "/batch", files={"file": ("lab.csv", "MRN,potassium,potassium_unit\n1,4,mmol/L\n", "text/csv")}
    )
    assert response.status_code == 422 and "direct identifier" in response.text
    assert client.get("/batch").status_code == 200


def test_rules_page_has_an_index_and_filters_without_javascript(client):
    page = client.get("/rules").text
    assert "<caption" in page and 'href="#acute_kidney_injury"' in page and 'id="acute_kidney_injury"' in page
    critical = client.get("/rules?severity=critical").text
    assert 'id="hypokalemia"' not in critical  # an advisory rule that escalates is listed by its own tier
    sodium = client.get("/rules?q=sodium").text
    assert 'id="rapid_sodium_fall"' in sodium and 'id="hypokalemia"' not in sodium
