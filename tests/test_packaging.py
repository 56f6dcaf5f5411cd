"""`pip install .` gives a working `interpret` anywhere: the wheel carries rules/ and templates/."""

from __future__ import annotations

import subprocess
import sys
import zipfile

import pytest

from tests.conftest import ROOT


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(out),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
    )
    (path,) = out.glob("interpret-*.whl")
    return path


def test_wheel_carries_rules_and_templates(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for name in [
        "interpret/_rules/ruleset.yaml",
        "interpret/_rules/analytes.yaml",
        "interpret/_rules/medications.yaml",
        "interpret/_rules/findings/20-patterns.yaml",
        "interpret/_templates/report.html",
        "interpret/_templates/report.txt",
    ]:
        assert name in names, name


def test_installed_wheel_works_outside_the_checkout(wheel, tmp_path):
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    panel = (ROOT / "examples/low-k-low-mg-loop-diuretic.json").read_text()
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "import interpret.cli, sys; sys.argv=['interpret','panel','-','-f','text']; interpret.cli.main()",
        ],
        input=panel,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"},
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert "hypokalemia_with_hypomagnesemia" in out.stdout
    assert (
        str(site)
        in subprocess.run(
            [
                sys.executable,
                "-c",
                "from interpret.ruleset.load import default_rules_dir; print(default_rules_dir())",
            ],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            env={"PYTHONPATH": str(site)},
            check=True,
        ).stdout
    )
