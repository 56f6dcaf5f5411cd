"""Run every rule's examples: the panels on which it must fire (at a severity) or stay silent."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from interpret.compact import expand
from interpret.validate import InputError


@dataclass(frozen=True)
class ExampleRun:
    code: str
    kind: str  # "fires" or "silent"
    index: int
    panel: dict[str, Any]
    expected_severity: str | None
    problem: str  # empty when the example behaves as written

    @property
    def name(self) -> str:
        return f"{self.code}.{self.kind}[{self.index}]"


def run_examples(interpreter: Any) -> Iterator[ExampleRun]:
    """Yield one run per example of every rule (`interpreter` is a `pipeline.Interpreter`)."""
    for rule in interpreter.ruleset.rules:
        examples = rule.definition.examples
        for kind, cases in (("fires", examples.fires), ("silent", examples.silent)):
            for i, case in enumerate(cases):
                problem = _check(interpreter, rule.code, kind, case.panel, case.severity)
                yield ExampleRun(rule.code, kind, i, case.panel, case.severity, problem)


def example_outcome(interpreter: Any, code: str, panel: dict[str, Any]) -> Any:
    """Rule `code`'s outcome on an example panel (compact notation), None where it was not
    evaluated; raises `InputError` or `ValueError` when the example is no valid panel."""
    _, _, outcomes = interpreter.evaluate(expand(panel))
    return next((o for o in outcomes if o.rule.code == code), None)


def _check(interpreter: Any, code: str, kind: str, panel: dict[str, Any], severity: Any) -> str:
    try:
        outcome = example_outcome(interpreter, code, panel)
    except (InputError, ValueError) as exc:
        return f"example is not a valid panel: {exc}"
    fired = outcome is not None and outcome.fired
    if kind == "silent":
        return f"fired ({outcome.severity}) but should stay silent" if fired and outcome else ""
    if outcome is None or not outcome.fired:
        state = "was not assessed" if outcome is not None else "did not fire"
        return f"{state} but should fire"
    if severity and outcome.severity != severity:
        return f"fired at {outcome.severity}, expected {severity}"
    return ""
