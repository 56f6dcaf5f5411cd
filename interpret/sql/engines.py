"""Running the facts-and-rules statement (`sql/query.py`) on an engine: duckdb in process.

A chunk of validated panels (the polars runner's validation, `batch/columns.py`) goes in as
an Arrow table, the statement runs where the data are, and the facts and masks come back for
the wording from distinct combinations (`PolarsRules.summary`). Enum columns travel as text.
"""

from __future__ import annotations

import functools
import threading

import polars as pl

from interpret.batch.columns import SEX_DTYPE, STATUS_DTYPE
from interpret.ruleset import Ruleset
from interpret.sql.query import Statement, statement

TABLE = "panels"
MASKS = ("__fired", "__raised", "__na")


class DuckdbFacts:
    """The facts and rule masks of chunks of validated panels, computed by duckdb."""

    dialect = "duckdb"

    def __init__(self, rs: Ruleset, analytes: list[str], lab_ranges: set[str]) -> None:
        import duckdb  # a base dependency; imported here so that the polars runner never loads it

        self.rs, self.analytes, self.lab_ranges = rs, analytes, lab_ranges
        self._connection = duckdb.connect(":memory:", config={"preserve_insertion_order": True, "threads": 2})
        self._lock = threading.Lock()  # one connection: chunks in flight take turns (duckdb itself is parallel)

    @functools.cache  # noqa: B019  (one per runner, for each distinct set of input columns)
    def _statement(self, inputs: tuple[str, ...]) -> tuple[Statement, str]:
        made = statement(self.rs, self.analytes, self.lab_ranges, list(inputs), TABLE)
        return made, made.sql(self.dialect)

    def evaluate(self, frame: pl.DataFrame) -> pl.DataFrame:
        """The same columns `PolarsRules.evaluate(ensure_quantities(facts(frame)))` gives."""
        texts = [n for n, t in frame.schema.items() if isinstance(t, pl.Enum | pl.Categorical)]
        inputs = frame.with_columns(pl.col(texts).cast(pl.String)) if texts else frame
        _, sql = self._statement(tuple(inputs.columns))
        with self._lock:
            cursor = self._connection.cursor()
            try:
                cursor.register(TABLE, inputs.to_arrow())
                result = pl.from_arrow(cursor.sql(sql).to_arrow_table())
            finally:
                cursor.close()
        assert isinstance(result, pl.DataFrame)
        statuses = [c for c in result.columns if c.startswith("s__")]
        return result.with_columns(
            pl.col(statuses).cast(STATUS_DTYPE),
            pl.col("sex").cast(SEX_DTYPE),
            pl.col(MASKS).cast(pl.UInt64),
            *(pl.col(c).cast(frame.schema[c]) for c in texts if c != "sex"),
        )
