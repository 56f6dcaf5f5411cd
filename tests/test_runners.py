"""Every runner of the ruleset passes the same contract (tests/runner_contract.py)."""

from __future__ import annotations

import pytest

from tests.runner_contract import ClosuresRunner, GeneratedRunner, PolarsRunner


class TestClosures(ClosuresRunner):
    pass


class TestGeneratedPython(GeneratedRunner):
    pass


class TestPolars(PolarsRunner):
    pass


class TestDuckdbSql(PolarsRunner):
    """The SQL runner on duckdb: the facts plan and the rules rendered by sqlglot."""

    engine = "duckdb"


class TestSparkSql(PolarsRunner):
    """The SQL runner on Spark local mode (one session for the module): the same statement in
    Spark's dialect. Skipped only where pyspark is not installed (`pip install '.[spark]'`)."""

    engine = "spark"

    @classmethod
    def setup_class(cls):
        from interpret.batch.run import engine_missing

        if why := engine_missing("spark"):
            pytest.skip(why)


def test_one_vocabulary_of_statuses_and_severities(interpreter):
    """The type checker's spellings (models.Status, models.Severity) are the vocabulary's own:
    facts.STATUSES and the tiers that rules/ruleset.yaml declares."""
    from typing import get_args

    from interpret.batch.columns import STATUS_DTYPE
    from interpret.facts import STATUSES
    from interpret.models import Severity, Status

    assert get_args(Status) == STATUSES and tuple(STATUS_DTYPE.categories) == STATUSES
    assert list(get_args(Severity)) == [t.name for t in interpreter.ruleset.meta.severities]
