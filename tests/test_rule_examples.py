"""Every example of every rule in rules/ (golden input -> expected outcome, sqlglot-style)."""

from __future__ import annotations

import pytest

from interpret.pipeline import default_interpreter
from interpret.ruleset.check import run_examples

RUNS = list(run_examples(default_interpreter()))


@pytest.mark.parametrize("run", RUNS, ids=[r.name for r in RUNS])
def test_rule_example(run):
    assert run.problem == "", f"{run.name} on {run.panel}: {run.problem}"


def test_every_rule_has_firing_and_silent_examples(interpreter):
    for rule in interpreter.ruleset.rules:
        kinds = {r.kind for r in RUNS if r.code == rule.code}
        assert kinds == {"fires", "silent"}, rule.code
