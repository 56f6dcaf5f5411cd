"""The one entry point every adapter uses: input -> Panel -> facts -> rules -> Interpretation."""

from __future__ import annotations

from typing import Any

from interpret.engine import Engine, Outcome
from interpret.models import Interpretation
from interpret.prepare import Facts, build_facts
from interpret.report import Reporter
from interpret.ruleset import Ruleset, default_ruleset
from interpret.validate import Panel, validate_panel


class Interpreter:
    """Holds a loaded ruleset and its compiled rules; cheap to call, costly to build."""

    def __init__(self, ruleset: Ruleset | None = None) -> None:
        self.ruleset = ruleset or default_ruleset()
        self.engine = Engine(self.ruleset)
        self.reporter = Reporter(self.ruleset, self.engine)

    def evaluate(self, data: Any) -> tuple[Panel, Facts, list[Outcome]]:
        """Validate, derive and evaluate; raises `InputError` with located errors."""
        panel = validate_panel(data, self.ruleset)
        facts = build_facts(panel, self.ruleset)
        return panel, facts, self.engine.evaluate(facts)

    def interpret(self, data: Any) -> Interpretation:
        return self.reporter.build(*self.evaluate(data))


_default: Interpreter | None = None


def default_interpreter() -> Interpreter:
    global _default
    if _default is None:
        _default = Interpreter()
    return _default
