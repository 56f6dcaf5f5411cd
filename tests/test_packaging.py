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


def test_every_module_imports_first():
    """Any module may be the first a user (or a lazy import) loads: no import cycle may depend on order."""
    script = """
import importlib, pkgutil, sys
import interpret
names = [m.name for m in pkgutil.walk_packages(interpret.__path__, "interpret.")]
failed = []
for name in names:
    for loaded in [m for m in sys.modules if m == "interpret" or m.startswith("interpret.")]:
        del sys.modules[loaded]
    try:
        importlib.import_module(name)
    except ImportError as exc:
        failed.append(f"{name}: {exc}")
print(len(names))
print("\\n".join(failed))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=ROOT)
    count, *failed = done.stdout.strip().splitlines()
    assert int(count) > 30 and failed == []
