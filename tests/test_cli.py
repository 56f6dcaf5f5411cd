"""The command line, as a user runs it."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.request

import pytest

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


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for(url: str, headers: dict | None = None):
    import time

    for _ in range(150):
        try:
            return urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=1)
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"{url} never answered")


def test_serve_with_workers_uses_the_given_rules_origins_and_trust(tmp_path):
    """Worker processes rebuild the app by name: --rules, --cors-origin and --cds-trust must reach them."""
    import shutil

    from interpret.ruleset import load_ruleset
    from interpret.ruleset.load import default_rules_dir

    rules = tmp_path / "rules"
    shutil.copytree(default_rules_dir(), rules)
    meta = rules / "ruleset.yaml"
    version = load_ruleset(rules).version
    meta.write_text(meta.read_text().replace(f'version: "{version}"', 'version: "site-local"', 1))
    expected = load_ruleset(rules)
    assert expected.version == "site-local"
    port = _free_port()
    from cryptography.hazmat.primitives.asymmetric import ec
    from jwt.algorithms import ECAlgorithm

    jwks = tmp_path / "jwks.json"
    public = json.loads(ECAlgorithm.to_jwk(ec.generate_private_key(ec.SECP384R1()).public_key()))
    jwks.write_text(json.dumps({"keys": [{**public, "kid": "k1"}]}))
    command = ["serve", "--port", str(port), "--workers", "2", "--rules", str(rules)]
    command += ["--cds-trust", f"https://ehr.example.org={jwks}"]
    server = subprocess.Popen(
        [sys.executable, "-m", "interpret.cli", *command, "--cors-origin", "https://ehr.example.org"],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        health = json.loads(_wait_for(f"http://127.0.0.1:{port}/healthz").read())
        assert health["ruleset_version"] == "site-local"
        assert health["ruleset_sha256"] == expected.sha256
        answer = _wait_for(f"http://127.0.0.1:{port}/healthz", {"Origin": "https://ehr.example.org"})
        assert answer.headers["access-control-allow-origin"] == "https://ehr.example.org"
        unsigned = urllib.request.Request(
            f"http://127.0.0.1:{port}/cds-services/electrolyte-panel",
            data=b"{}",
            method="POST",
            headers={"Content-Type": "application/json"},
        )
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(unsigned, timeout=10)
        assert refused.value.code == 401
    finally:
        server.terminate()
        server.wait(timeout=20)


def test_version_and_short_help():
    out = run("--version")
    assert out.returncode == 0 and "rule set electrolyte-panel v" in out.stdout and "sha256" in out.stdout
    assert run("-h").returncode == 0 and "Usage" in run("-h").stdout
    assert run("batch", "-h").returncode == 0


@pytest.mark.parametrize("command", [(), ("batch",), ("panel",), ("sql",), ("serve",), ("rules", "diff")])
def test_help_is_in_the_words_a_user_types(command):
    """No `<bool>`, `<list[str]>` or `{input_csv}` (typer's own notation): a flag shows no
    value, a path PATH, a repeatable option `...`, a required argument in capitals; -o says
    when it is required."""
    import re

    text = run(*command, "--help").stdout
    assert "Usage" in text
    assert not re.search(r"<[a-z\[\]]+>|\{[a-z_]+\}", text), text
    if command == ("batch",):
        flat = " ".join(re.sub("[│╭╮╰╯─]", " ", text).split())  # the panels' lines unwrapped
        assert "INPUT_CSV" in flat and "required unless --inspect" in flat and "TEXT ..." in flat
        assert "--inspect Show how" in flat  # a flag: no value word
