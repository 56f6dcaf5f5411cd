"""Loading rules/: mistakes are located (file, rule, field); hash and settings behave."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from interpret.compact import expand
from interpret.pipeline import Interpreter
from interpret.ruleset import RulesetError, load_ruleset
from interpret.ruleset.load import default_rules_dir


@pytest.fixture
def rules_copy(tmp_path: Path) -> Path:
    target = tmp_path / "rules"
    shutil.copytree(default_rules_dir(), target)
    return target


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new, 1))


def problems(directory: Path) -> str:
    with pytest.raises(RulesetError) as info:
        load_ruleset(directory)
    return "\n".join(info.value.problems)


def test_unknown_condition_names_file_rule_and_path(rules_copy):
    edit(
        rules_copy / "findings/20-patterns.yaml",
        "when: {all: [{low: potassium}, {low: magnesium}]}",
        "when: {all: [{low: potassium}, {lowish: magnesium}]}",
    )
    text = problems(rules_copy)
    assert "findings/20-patterns.yaml: rule 'hypokalemia_with_hypomagnesemia': when.all[1].lowish" in text


def test_unknown_quantity(rules_copy):
    edit(
        rules_copy / "findings/10-single-results.yaml",
        "when: {low: potassium}",
        "when: {low: potasium}",
    )
    assert "rule 'hypokalemia': when.low: 'potasium' is not a quantity" in problems(rules_copy)


def test_unknown_medication_class(rules_copy):
    edit(
        rules_copy / "findings/20-patterns.yaml",
        "{taking: potassium_supplement}]}",
        "{taking: potasium_supplement}]}",
    )
    assert "rule 'refractory_hypokalemia': unknown medication class 'potasium_supplement'" in problems(rules_copy)


def test_unknown_reference_and_placeholder(rules_copy):
    edit(
        rules_copy / "findings/10-single-results.yaml",
        "references: [SP-HypoK, Cohn2000, RCPath2017]",
        "references: [SP-HypoK, Nobody2099]",
    )
    edit(
        rules_copy / "findings/10-single-results.yaml",
        "({potassium.interval})",
        "({potassium.colour})",
    )
    text = problems(rules_copy)
    assert "unknown reference 'Nobody2099'" in text
    assert "rule 'hypokalemia': message: unknown placeholder {potassium.colour}" in text


def test_threshold_in_a_unit_foreign_to_the_analyte(rules_copy):
    edit(rules_copy / "findings/10-single-results.yaml", "below: 3.0 mmol/L", "below: 3.0 g/L")
    assert "'g/L' is not a unit of potassium" in problems(rules_copy)


def test_misspelt_rule_key_is_an_error(rules_copy):
    edit(
        rules_copy / "findings/10-single-results.yaml",
        "    severity: advisory\n    escalate:",
        "    severity: advisory\n    escalation:",
    )
    assert "rule 'hypokalemia': escalation: Extra inputs are not permitted" in problems(rules_copy)


def test_rule_without_sources_or_examples_is_refused(rules_copy):
    edit(
        rules_copy / "findings/10-single-results.yaml",
        "references: [SP-HypoK, Cohn2000, RCPath2017]",
        "references: []",
    )
    assert "rule 'hypokalemia': references" in problems(rules_copy)


def test_medication_class_typo_in_catalogue(rules_copy):
    edit(
        rules_copy / "medications.yaml",
        "classes: [loop_diuretic], brands: [Bumex]",
        "classes: [loop_diuretics], brands: [Bumex]",
    )
    assert "drug 'bumetanide': unknown classes ['loop_diuretics']" in problems(rules_copy)


def test_local_forms_name_a_class_of_the_catalogue(rules_copy):
    edit(rules_copy / "medications.yaml", "becomes: local_preparation", "becomes: local_prep")
    assert "local_forms: unknown class 'local_prep'" in problems(rules_copy)


def test_hash_changes_with_content(rules_copy):
    before = load_ruleset(rules_copy).sha256
    edit(rules_copy / "analytes.yaml", "at_or_above: {mmol/L: 6.5}", "at_or_above: {mmol/L: 6.0}")
    after = load_ruleset(rules_copy)
    assert before != after.sha256 and len(after.sha256) == 64


def test_site_can_lower_the_potassium_critical_limit(rules_copy):
    edit(rules_copy / "analytes.yaml", "at_or_above: {mmol/L: 6.5}", "at_or_above: {mmol/L: 6.0}")
    interpreter = Interpreter(load_ruleset(rules_copy))
    _, _, outcomes = interpreter.evaluate(expand({"potassium": "6.1 mmol/L"}))
    assert {o.rule.code: o.severity for o in outcomes}["hyperkalemia"] == "critical"


def test_g5_critical_setting(rules_copy):
    panel = expand({"egfr": "10 mL/min/1.73m2"})
    default = {o.rule.code: o.severity for o in Interpreter(load_ruleset(rules_copy)).evaluate(panel)[2]}
    edit(rules_copy / "ruleset.yaml", "value: false", "value: true")
    switched = {o.rule.code: o.severity for o in Interpreter(load_ruleset(rules_copy)).evaluate(panel)[2]}
    assert default["reduced_egfr"] == "warning" and switched["reduced_egfr"] == "critical"


def test_a_conventional_calcium_correction_names_units_of_its_analytes(rules_copy):
    edit(rules_copy / "derivations.yaml", "albumin_unit: g/dL", "albumin_unit: mg/dL")
    assert "corrected_calcium.conventional: 'mg/dL' is not a unit of albumin" in problems(rules_copy)
