"""`interpret rules diff` and the release record (`rules/released.yaml`).

A copy of `rules/` with one threshold, one medication entry and one wording changed is run
against the shipped rules on generated data and on the MIMIC-IV demo; the gains and losses
are checked against counts made directly from the input files, not by the code under test.
"""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from interpret.cli import app
from interpret.ruleset.load import default_rules_dir
from tests.test_batch import MIMIC_WIDE


def _cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout + result.stderr


def _edited(tmp_path: Path) -> Path:
    """The shipped rules with: potassium's lower limit 3.5 -> 3.4 mmol/L; metolazone without its
    brand Zaroxolyn; hypokalaemia's title reworded."""
    new = tmp_path / "rules"
    shutil.copytree(default_rules_dir(), new)
    for name, old, replacement in (
        ("analytes.yaml", "any: {mmol/L: [3.5, 5.0]}", "any: {mmol/L: [3.4, 5.0]}"),
        ("medications.yaml", "{name: metolazone, classes: [thiazide_diuretic], brands: [Zaroxolyn]}", "{name: metolazone, classes: [thiazide_diuretic]}"),
        ("findings/10-single-results.yaml", "title: Low potassium (hypokalaemia)", "title: Potassium below the interval"),
    ):  # fmt: skip
        path = new / name
        text = path.read_text()
        assert text.count(old) == 1, (name, old)
        path.write_text(text.replace(old, replacement))
    return new


def _generated(path: Path, rows: int = 400) -> pl.DataFrame:
    rng = random.Random(7)
    frame = pl.DataFrame(
        {
            "specimen_id": [f"S{i}" for i in range(rows)],
            "potassium": [rng.choice(["3.1", "3.4", "3.45", "3.5", "4.2"]) for _ in range(rows)],
            "potassium_unit": ["mmol/L"] * rows,
            "magnesium": ["2.0"] * rows,
            "magnesium_unit": ["mg/dL"] * rows,
            "age": ["60"] * rows,
            "sex": [rng.choice(["F", "M"]) for _ in range(rows)],
            "medications": [rng.choice(["Zaroxolyn", "Lasix 40 mg", "", "Zaroxolyn;aspirin"]) for _ in range(rows)],
        }
    )
    frame.write_csv(path)
    return frame


def _shift(text: str, code: str, severity: str) -> tuple[int, int]:
    line = next((x for x in text.splitlines() if x.strip().startswith(f"{code} ({severity}):")), None)
    if line is None:
        return 0, 0
    gained, lost = line.split(":", 1)[1].split()
    return int(gained.lstrip("+")), int(lost.lstrip("-"))


def test_diff_on_generated_data_matches_a_direct_count(tmp_path):
    new = _edited(tmp_path)
    data = _generated(tmp_path / "panels.csv")
    code, text = _cli("rules", "diff", "--old", str(default_rules_dir()), "--new", str(new),
                      "--on", str(tmp_path / "panels.csv"), "--id-column", "specimen_id",
                      "--html", str(tmp_path / "diff.html"))  # fmt: skip
    assert code == 0, text
    k = data["potassium"].cast(pl.Float64)
    # 3.4 and 3.45 are low under 3.5, normal under 3.4: hypokalaemia is lost, never gained
    assert _shift(text, "hypokalemia", "advisory") == (0, int(((k >= 3.4) & (k < 3.5)).sum()))
    # Zaroxolyn is no longer a name the catalogue knows: every row with it gains the flag
    zaroxolyn = data["medications"].str.contains("Zaroxolyn")
    gained_flag = sum(_shift(text, "unrecognized_medication", s)[0] for s in ("info", "advisory", "warning"))
    assert gained_flag == int(zaroxolyn.sum())
    # the diuretic finding (low K on a diuretic, Mg normal) is lost on Zaroxolyn wherever K was
    # low, and on Lasix where K is low only under the old limit
    lasix = data["medications"].str.contains("Lasix")
    lost = (zaroxolyn & (k < 3.5)) | (lasix & (k >= 3.4) & (k < 3.5))
    assert _shift(text, "diuretic_associated_losses", "advisory") == (0, int(lost.sum()))
    # the wording and the two data changes are named where they are
    assert (
        "findings/10-single-results.yaml hypokalemia.title: Low potassium (hypokalaemia) -> Potassium below the interval"
        in text.replace("rules.hypokalemia", "hypokalemia")
    )
    assert "analytes.yaml analytes.potassium.reference_interval.any.mmol/L[0]: 3.5 -> 3.4" in text
    assert "medications.yaml" in text and "Zaroxolyn" in text
    assert "WARNING: the content changed but the version did not" in text
    page = (tmp_path / "diff.html").read_text()
    assert "Gains and losses per finding" in page and "<svg" in page and "Clinical decision support only" in page
    assert "S" in page and "specimen_id" in page


def test_examples_name_rows_by_line_and_id_only(tmp_path):
    """Never another identifier: the sex column's values, the medication names stay out."""
    new = _edited(tmp_path)
    _generated(tmp_path / "panels.csv", rows=50)
    code, text = _cli("rules", "diff", "--old", str(default_rules_dir()), "--new", str(new),
                      "--on", str(tmp_path / "panels.csv"), "--id-column", "specimen_id")  # fmt: skip
    assert code == 0
    examples = [x for x in text.splitlines() if "e.g. (line, specimen_id)" in x]
    assert examples and all("Lasix" not in x and "aspirin" not in x for x in examples)


@pytest.mark.skipif(not MIMIC_WIDE.exists(), reason="../shared/data/mimic-iv-demo is not beside this checkout")
def test_diff_on_the_mimic_demo_matches_a_direct_count(tmp_path):
    new = _edited(tmp_path)
    code, text = _cli("rules", "diff", "--old", str(default_rules_dir()), "--new", str(new), "--on", str(MIMIC_WIDE),
                      "--id-column", "specimen_id", "--allow-identifier", "subject_id", "--allow-identifier", "hadm_id")  # fmt: skip
    assert code == 0, text
    raw = pl.read_csv(MIMIC_WIDE, infer_schema=False)
    k = raw["potassium"].cast(pl.Float64, strict=False)
    assert _shift(text, "hypokalemia", "advisory") == (0, int(((k >= 3.4) & (k < 3.5)).sum()))
    assert _shift(text, "hypokalemia", "advisory")[1] == 90


def test_unknown_old_version_is_refused_clearly(tmp_path):
    _generated(tmp_path / "panels.csv", rows=5)
    code, text = _cli(
        "rules", "diff", "--old", "1999.01.0", "--new", str(default_rules_dir()), "--on", str(tmp_path / "panels.csv")
    )
    assert code == 2 and "1999.01.0" in text


def test_the_shipped_rules_are_recorded_as_released():
    """rules/released.yaml names the current version and content hash: a change to rules/ that
    keeps the version fails here (and `interpret rules check`)."""
    from interpret.ruleset import default_ruleset
    from interpret.ruleset.release import released

    rs = default_ruleset()
    done = released(rs)
    assert done is not None and (done.version, done.sha256) == (rs.version, rs.sha256)


def test_check_fails_when_content_changes_under_the_same_version(tmp_path):
    new = tmp_path / "rules"
    shutil.copytree(default_rules_dir(), new)
    code, text = _cli("rules", "check", "--rules", str(new))
    assert code == 0, text
    path = new / "findings/10-single-results.yaml"
    path.write_text(path.read_text().replace("title: Low potassium (hypokalaemia)", "title: Low potassium"))
    code, text = _cli("rules", "check", "--rules", str(new))
    assert code == 1 and "the content changed since version" in text and "did not: raise it" in text


def test_a_changed_rule_whose_examples_do_not_see_the_change_is_named(tmp_path):
    """High magnesium with poor kidneys moved from eGFR < 30 to < 25 with its examples left as
    they were: none sits between 25 and 30, so the changed branch is untested. A change of
    wording alone has no branch and is not named."""
    from interpret.pipeline import Interpreter
    from interpret.ruleset import default_ruleset, load_ruleset
    from interpret.ruleset.release import uncovered_changes

    new = tmp_path / "rules"
    shutil.copytree(default_rules_dir(), new)
    path = new / "findings/20-patterns.yaml"
    text = path.read_text()
    old_it = Interpreter(default_ruleset())
    reworded = text.replace("title: High magnesium with severely reduced eGFR", "title: High Mg, eGFR under 30")
    path.write_text(reworded)
    assert uncovered_changes(old_it, Interpreter(load_ruleset(new))) == []
    when = "when: {all: [{high: magnesium}, {value: {of: egfr, below: 30 mL/min/1.73m2}}]}"
    assert text.count(when) == 1
    path.write_text(text.replace(when, when.replace("below: 30", "below: 25")))
    problems = uncovered_changes(old_it, Interpreter(load_ruleset(new)))
    assert [p.split(":")[0] for p in problems] == ["hypermagnesemia_renal_impairment"]
    assert "add an example at the changed boundary" in problems[0]


def test_an_old_version_is_read_as_it_was_released(tmp_path):
    """`--old 2026.12.3` is the content `rules/released.yaml` recorded for it, not a later edit
    committed under the same version before the next release (this repository has one: the
    free-text haemolysis words, committed before 2026.12.4 was released)."""
    import subprocess

    import yaml

    from interpret.batch.impact import ruleset_folder
    from interpret.ruleset import load_ruleset

    rules = default_rules_dir().resolve()
    log = subprocess.run(
        ["git", "-C", str(rules), "log", "--format=%H", "--", "released.yaml"], capture_output=True, text=True
    )
    recorded = {}
    for commit in log.stdout.split() if log.returncode == 0 else []:
        shown = subprocess.run(
            ["git", "-C", str(rules), "show", f"{commit}:./released.yaml"], capture_output=True, text=True
        )
        data = yaml.safe_load(shown.stdout) or {} if shown.returncode == 0 else {}
        recorded.setdefault(data.get("version"), data.get("sha256"))
    if "2026.12.3" not in recorded:
        pytest.skip("not a checkout with the rules' release history")
    assert load_ruleset(ruleset_folder("2026.12.3", tmp_path)).sha256 == recorded["2026.12.3"]
