"""Hostile and slipshod input to the JSON API (issue: broken and hostile input): each test
failed before its fix."""

from __future__ import annotations

from fastapi.testclient import TestClient

from interpret.web.app import create_app

PANEL = b'{"results": [{"analyte": "potassium", "value": %s, "unit": "mmol/L"}]}'


def client(interpreter, raise_errors=True):
    return TestClient(create_app(interpreter), raise_server_exceptions=raise_errors)


def post(c, body: bytes, content_type="application/json"):
    return c.post("/api/v1/interpret", content=body, headers={"content-type": content_type})


def test_true_is_not_a_potassium_of_one(interpreter):
    response = post(client(interpreter), PANEL % b"true")
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == "results[0].value"


def test_a_key_given_twice_is_refused_with_its_place(interpreter):
    body = b'{"results": [{"analyte": "potassium", "value": 3.0, "value": 7.0, "unit": "mmol/L"}]}'
    response = post(client(interpreter), body)
    assert response.status_code == 422
    assert response.json()["detail"] == [{"loc": "results[0]", "msg": "key 'value' given twice"}]


def test_a_huge_reference_range_is_refused_not_a_server_error(interpreter):
    body = b'{"results": [{"analyte": "albumin", "value": 3.0, "unit": "g/dL", "reference_range": {"low": 1e308}}]}'
    response = post(client(interpreter, raise_errors=False), body)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == "results[0].reference_range.low"


def test_text_plain_is_refused_so_a_cross_site_form_cannot_post_a_report(interpreter):
    response = post(client(interpreter), PANEL % b"3.0", content_type="text/plain")
    assert response.status_code == 415
    assert "content-security-policy" in response.headers


def test_a_body_that_is_not_utf8_is_400_as_documented(interpreter):
    assert post(client(interpreter), b'{"results": "\xff\xfe"}').status_code == 400


def test_an_internal_error_still_carries_the_security_headers_and_no_detail(interpreter, monkeypatch):
    c = client(interpreter, raise_errors=False)

    def broken(*args, **kwargs):
        raise RuntimeError("patient value 3.0 leaked?")

    monkeypatch.setattr(interpreter, "interpret", broken)
    response = post(c, PANEL % b"3.0")
    assert response.status_code == 500
    assert "content-security-policy" in response.headers and "nosniff" in response.headers["x-content-type-options"]
    assert "3.0" not in response.text
