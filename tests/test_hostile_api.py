"""Hostile and slipshod input to the JSON API (issue: broken and hostile input): each test
failed before its fix."""

from __future__ import annotations

import tempfile
from pathlib import Path

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


CSV = "id,potassium,potassium_unit\nr1,3.0,mmol/L\n"


def test_an_upload_from_another_sites_form_is_refused(interpreter):
    c = client(interpreter)
    files = {"file": ("lab.csv", CSV, "text/csv")}
    assert c.post("/batch", files=files, headers={"Origin": "https://evil.example"}).status_code == 403
    assert c.post("/batch", files=files, headers={"Origin": "null"}).status_code == 403
    assert c.post("/batch", files=files, headers={"Origin": "http://testserver"}).status_code == 200


def test_a_gzip_bomb_upload_is_refused_without_writing_it_out(interpreter, monkeypatch):
    import gzip

    from interpret.web import batch_upload

    monkeypatch.setattr(batch_upload, "UPLOAD_DECOMPRESS_LIMIT", 10 * 2**20)
    bomb = gzip.compress(b"id,potassium,potassium_unit\n" + b"0" * (64 * 2**20), compresslevel=9)
    assert len(bomb) < 200_000
    response = client(interpreter).post("/batch", files={"file": ("lab.csv.gz", bomb, "application/gzip")})
    assert response.status_code == 422 and "expands to more than" in response.text


def test_a_gzip_bomb_on_the_command_line_stops_with_a_message(tmp_path):
    import gzip
    import subprocess
    import sys

    from tests.conftest import ROOT

    bomb = tmp_path / "bomb.csv.gz"
    bomb.write_bytes(gzip.compress(b"id,potassium,potassium_unit\n" + b"0" * (32 * 2**20)))
    done = subprocess.run(
        [sys.executable, "-m", "interpret.cli", "batch", str(bomb), "-o", str(tmp_path / "out.csv")],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={"INTERPRET_MAX_UNCOMPRESSED_BYTES": str(8 * 2**20), "PATH": "/usr/bin:/bin"},
        timeout=120,
    )
    assert done.returncode == 2 and "expands to more than" in done.stderr, done.stderr
    assert not (tmp_path / "out.csv").exists()
    leftovers = [
        p for p in Path(tempfile.gettempdir()).glob("interpret-gunzip-*") if p.stat().st_mtime > bomb.stat().st_mtime
    ]
    assert leftovers == []


def test_aborted_requests_and_internal_errors_log_one_short_line_and_no_values(interpreter, caplog, monkeypatch):
    import asyncio
    import logging

    from interpret.web import batch_upload

    app = create_app(interpreter)

    async def aborted(path: str) -> list:
        sent = []
        messages = iter(
            [
                {
                    "type": "http.request",
                    "body": b'{"results": [{"analyte": "potassium", "value": 3.1',
                    "more_body": True,
                },
                {"type": "http.disconnect"},
            ]
        )

        async def receive():
            return next(messages)

        async def send(message):
            sent.append(message)

        scope = {
            "type": "http",
            "method": "POST",
            "path": path,
            "headers": [(b"content-type", b"application/json")],
            "query_string": b"",
            "server": ("testserver", 80),
            "scheme": "http",
            "root_path": "",
        }
        await app(scope, receive, send)
        return sent

    caplog.set_level(logging.DEBUG)
    for _ in range(50):
        asyncio.run(aborted("/api/v1/interpret"))
        asyncio.run(aborted("/cds-services/electrolyte-panel"))

    def failing(*args, **kwargs):
        raise RuntimeError("row r1,3.0,mmol/L could not be read")

    monkeypatch.setattr(batch_upload, "execute", failing)
    c = TestClient(app, raise_server_exceptions=False)
    response = c.post("/batch", files={"file": ("lab.csv", CSV, "text/csv")})
    assert response.status_code == 500
    logged = [r.getMessage() for r in caplog.records if r.name != "asyncio"]
    assert len(logged) <= 2, logged  # the failed upload: one line
    assert all(len(line) < 200 and "3.0" not in line and "3.1" not in line for line in logged)
    assert not any(r.exc_info for r in caplog.records)


def test_a_run_without_room_for_its_output_is_refused_before_any_row(interpreter, tmp_path, monkeypatch):
    from collections import namedtuple

    from interpret.batch import job
    from interpret.batch.job import BatchOptions, execute
    from interpret.batch.read import BatchInputError

    source = tmp_path / "in.csv"
    source.write_text(CSV * 1)
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(job.shutil, "disk_usage", lambda _: usage(10**9, 10**9 - 10, 10))
    try:
        execute(interpreter.ruleset, source, tmp_path / "out.csv", BatchOptions())
    except BatchInputError as exc:
        assert "bytes free" in str(exc)
    else:
        raise AssertionError("not refused")
    assert not (tmp_path / "out.csv").exists()


def test_a_compressed_input_is_read_as_a_stream_without_a_copy(interpreter, tmp_path, monkeypatch):
    import gzip

    from interpret.batch.job import BatchOptions, execute

    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    source = tmp_path / "in.csv.gz"
    source.write_bytes(gzip.compress(CSV.encode()))
    created = []
    real = tempfile.mkstemp
    monkeypatch.setattr(tempfile, "mkstemp", lambda *a, **k: created.append(1) or real(*a, **k))
    result = execute(interpreter.ruleset, source, tmp_path / "out.csv", BatchOptions())
    assert result.stats.rows == 1 and created == []


def test_a_basic_metabolic_panel_is_interpreted_not_refused(interpreter):
    """Chloride, total CO2 and BUN were 'unknown analytes': a routine BMP was refused whole."""
    bmp = {
        "patient": {"age": 60, "sex": "male"},
        "results": [
            {"analyte": "sodium", "value": 140, "unit": "mmol/L"},
            {"analyte": "potassium", "value": 4.1, "unit": "mmol/L"},
            {"analyte": "2075-0", "value": 101, "unit": "mmol/L"},
            {"analyte": "CO2", "value": 24, "unit": "mEq/L"},
            {"analyte": "BUN", "value": 30, "unit": "mg/dL"},
            {"analyte": "creatinine", "value": 1.0, "unit": "mg/dL"},
            {"analyte": "glucose", "value": 100, "unit": "mg/dL"},
            {"analyte": "calcium", "value": 9.5, "unit": "mg/dL"},
        ],
    }
    response = client(interpreter).post("/api/v1/interpret", json=bmp)
    assert response.status_code == 200, response.text
    results = {r["analyte"]: r for r in response.json()["results"]}
    assert results["chloride"]["status"] == "normal" and results["bicarbonate"]["status"] == "normal"
    assert abs(results["bun"]["canonical_value"] - 30 * 0.357) < 0.01  # BUN mg/dL -> urea mmol/L
    assert results["bun"]["status"] == "high"  # above Mayo's 8-24 mg/dL for men
