"""A site's overlay (`--site site.yaml`): its own intervals, critical limits, settings and
wording on top of the shipped ruleset, without copying `rules/` (ruleset/site.py)."""

from __future__ import annotations

import json

import polars as pl
from typer.testing import CliRunner

from interpret.cli import app

SITE = """\
site: St Elsewhere laboratory
analytes:
  potassium:
    reference_interval: {any: {mmol/L: [3.5, 5.3]}}
    critical: {below: {mmol/L: 2.8}, at_or_above: {mmol/L: 6.0}}
settings: {egfr_g5_critical: true}
rules:
  hypokalemia: {recommendation: "Follow the St Elsewhere potassium replacement protocol."}
"""


def _cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout + result.stderr


def _panel(tmp_path, potassium: float) -> str:
    path = tmp_path / f"k{potassium}.json"
    panel = {
        "results": [{"analyte": "potassium", "value": potassium, "unit": "mmol/L"}],
        "patient": {"age": 60, "sex": "female"},
    }
    path.write_text(json.dumps(panel))
    return str(path)


def test_the_site_limits_and_wording_decide_and_the_version_says_so(tmp_path):
    (tmp_path / "site.yaml").write_text(SITE)
    code, shipped = _cli("panel", _panel(tmp_path, 2.7), "--format", "json")
    assert code == 0
    shipped = json.loads(shipped)
    code, text = _cli("panel", _panel(tmp_path, 2.7), "--format", "json", "--site", str(tmp_path / "site.yaml"))
    assert code == 0, text
    sited = json.loads(text)
    severity = {f["code"]: f["severity"] for f in sited["findings"]}
    assert severity["hypokalemia"] == "critical"  # 2.7 is below the site's 2.8, above the shipped 2.5
    assert {f["code"]: f["severity"] for f in shipped["findings"]}["hypokalemia"] != "critical"
    assert sited["ruleset"]["version"].endswith("+site.st-elsewhere-laboratory")
    assert sited["ruleset"]["sha256"] != shipped["ruleset"]["sha256"]
    finding = next(f for f in sited["findings"] if f["code"] == "hypokalemia")
    assert "St Elsewhere potassium replacement protocol" in finding["recommendation"]


def test_batch_with_a_site_uses_its_interval(tmp_path):
    (tmp_path / "site.yaml").write_text(SITE)
    (tmp_path / "in.csv").write_text("potassium,potassium_unit\n5.2,mmol/L\n")
    for site, status in ((None, "high"), (tmp_path / "site.yaml", "normal")):
        args = ["batch", str(tmp_path / "in.csv"), "-o", str(tmp_path / "out.csv")]
        code, text = _cli(*args, *(["--site", str(site)] if site else []))
        assert code == 0, text
        assert pl.read_csv(tmp_path / "out.csv", infer_schema=False)["potassium_status"][0] == status


def test_rules_check_with_a_site_reports_the_examples_it_changes(tmp_path):
    (tmp_path / "site.yaml").write_text(SITE)
    code, text = _cli("rules", "check", "--site", str(tmp_path / "site.yaml"))
    assert code == 0, text
    assert "changed by the site's overlay" in text and "0 failed" in text


def test_what_the_ruleset_lacks_is_refused_by_name(tmp_path):
    for body, named in (
        ("site: x\nanalytes: {troponin: {critical: {below: {ng/L: 1}}}}\n", "analytes.troponin"),
        ("site: x\nrules: {hypokalaemia_typo: {title: T}}\n", "rules.hypokalaemia_typo"),
        ("site: x\nsettings: {unknown_switch: true}\n", "settings.unknown_switch"),
        ("site: x\nanalytes: {potassium: {plausibility: {}}}\n", "plausibility"),  # logic stays reviewed
        ("analytes: {}\n", "site"),
    ):
        (tmp_path / "site.yaml").write_text(body)
        code, text = _cli("panel", _panel(tmp_path, 3.0), "--site", str(tmp_path / "site.yaml"))
        assert code == 2 and named in text, (body, text)
