"""Documentation stays honest (datasette's test_docs): everything the engine knows is documented."""

from __future__ import annotations

import json

import pytest

from interpret.catalogue import catalogue
from interpret.facts import QUANTITIES
from interpret.ruleset.conditions import PARSERS
from tests.conftest import ROOT

README = (ROOT / "rules/README.md").read_text()


@pytest.mark.parametrize("keyword", sorted(PARSERS))
def test_every_condition_is_documented(keyword):
    assert f"`{keyword}:" in README or f"`{keyword}: " in README, keyword


@pytest.mark.parametrize("quantity", sorted(QUANTITIES))
def test_every_quantity_is_documented(quantity):
    assert f"| `{quantity}` |" in README


def test_catalogue_explains_every_rule(interpreter):
    entries = catalogue(interpreter.ruleset)["rules"]
    assert len(entries) == len(interpreter.ruleset.rules)
    for entry in entries:
        assert entry["logic"] and entry["references"] and entry["recommendation"], entry["code"]


@pytest.mark.parametrize("path", sorted((ROOT / "examples").glob("*.json")), ids=lambda p: p.name)
def test_examples_behave_as_named(interpreter, path):
    from interpret.validate import InputError

    data = json.loads(path.read_text())
    if path.name.startswith("invalid"):
        with pytest.raises(InputError):
            interpreter.interpret(data)
    else:
        assert interpreter.interpret(data).findings


def test_readme_opens_with_the_two_commands():
    head = (ROOT / "README.md").read_text().split("##")[0]
    assert "scripts/serve" in head and "scripts/test" in head
    assert "scripts/test" in (ROOT / ".ci/run").read_text()
