"""The command line, as a user runs it."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import ROOT

EXAMPLES = ROOT / "examples"


def run(*args, stdin=None):
    return subprocess.run(
        [sys.executable, "-m", "interpret.cli", *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )


def test_panel_json():
    out = run("panel", str(EXAMPLES / "low-k-low-mg-loop-diuretic.json"))
    assert out.returncode == 0, out.stderr
    codes = {f["code"] for f in json.loads(out.stdout)["findings"]}
    assert {"hypokalemia_with_hypomagnesemia", "diuretic_associated_losses"} <= codes


def test_panel_from_standard_input_as_text():
    text = (EXAMPLES / "haemolysed-high-potassium.json").read_text()
    out = run("panel", "-", "--format", "text", stdin=text)
    assert out.returncode == 0 and "possible_pseudohyperkalemia" in out.stdout


def test_invalid_panel_exits_2_with_located_errors():
    out = run("panel", str(EXAMPLES / "invalid-unit.json"))
    assert out.returncode == 2 and out.stdout == ""
    assert "results[0].unit: 'furlongs' is not a unit for potassium" in out.stderr
    assert "patient.age" in out.stderr


def test_invalid_json_names_line_and_column():
    out = run("panel", "-", stdin='{"results": [\n  {"analyte": }\n]}')
    assert out.returncode == 2 and "line 2, column" in out.stderr


def test_rules_check_and_list():
    check = run("rules", "check")
    assert check.returncode == 0 and "0 failed" in check.stdout
    listing = run("rules", "list")
    assert "hypokalemia_with_hypomagnesemia" in listing.stdout


def test_broken_ruleset_exits_2(tmp_path):
    (tmp_path / "ruleset.yaml").write_text("name: x\n")
    out = run("rules", "check", "--rules", str(tmp_path))
    assert out.returncode == 2 and "ruleset.yaml" in out.stderr
