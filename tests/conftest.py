from __future__ import annotations

from pathlib import Path

import pytest

from interpret.compact import expand
from interpret.pipeline import Interpreter, default_interpreter

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"


@pytest.fixture(scope="session")
def interpreter() -> Interpreter:
    return default_interpreter()


def outcomes(interpreter: Interpreter, compact: dict) -> dict:
    """code -> severity for fired rules, code -> None for rules not assessed."""
    _, _, result = interpreter.evaluate(expand(compact))
    return {o.rule.code: o.severity for o in result}
