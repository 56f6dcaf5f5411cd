"""Every runner of the ruleset passes the same contract (tests/runner_contract.py)."""

from __future__ import annotations

from tests.runner_contract import ClosuresRunner, GeneratedRunner, PolarsRunner


class TestClosures(ClosuresRunner):
    pass


class TestGeneratedPython(GeneratedRunner):
    pass


class TestPolars(PolarsRunner):
    pass
