"""Running the facts-and-rules statement (`sql/query.py`) on an engine: duckdb in process,
or Spark (local or a cluster's master URL).

A chunk of validated panels (the polars runner's validation, `batch/columns.py`) goes in as
an Arrow table, the statement runs where the data are, and the facts and masks come back for
the wording from distinct combinations (`PolarsRules.summary`). Enum columns travel as text.
"""

from __future__ import annotations

import functools
import threading
from typing import Any

import polars as pl

from interpret.batch.columns import CLASSES, SEX_DTYPE, STATUS_DTYPE
from interpret.ruleset import Ruleset
from interpret.sql.query import statement

TABLE = "panels"
MASKS = ("__fired", "__raised", "__na")


def _restore(result: pl.DataFrame, frame: pl.DataFrame, texts: list[str]) -> pl.DataFrame:
    """The polars runner's types back on an engine's result (enums travel as text)."""
    statuses = [c for c in result.columns if c.startswith("s__")]
    return result.with_columns(
        pl.col(statuses).cast(STATUS_DTYPE),
        *([pl.col("sex").cast(SEX_DTYPE)] if "sex" in result.columns else []),
        pl.col(MASKS).cast(pl.UInt64),
        *(pl.col(c).cast(frame.schema[c]) for c in texts if c != "sex" and c in result.columns),
    )


def _as_text(frame: pl.DataFrame) -> tuple[pl.DataFrame, list[str]]:
    texts = [n for n, t in frame.schema.items() if isinstance(t, pl.Enum | pl.Categorical)]
    return (frame.with_columns(pl.col(texts).cast(pl.String)) if texts else frame), texts


class DuckdbFacts:
    """The facts and rule masks of chunks of validated panels, computed by duckdb."""

    dialect = "duckdb"

    def __init__(self, rs: Ruleset, analytes: list[str], lab_ranges: set[str]) -> None:
        import duckdb  # a base dependency; imported here so that the polars runner never loads it

        self.rs, self.analytes, self.lab_ranges = rs, analytes, lab_ranges
        self._connection = duckdb.connect(":memory:", config={"preserve_insertion_order": True})

    @functools.cache  # noqa: B019  (one per runner, for each distinct set of input columns)
    def _statement(self, inputs: tuple[str, ...]) -> str:
        made = statement(self.rs, self.analytes, self.lab_ranges, list(inputs), TABLE, keep_inputs=False)
        return made.sql(self.dialect)

    def evaluate(self, frame: pl.DataFrame) -> pl.DataFrame:
        """The same columns `PolarsRules.evaluate(ensure_quantities(facts(frame)))` gives: the
        columns the statement reads go to duckdb, the facts and masks it adds come back."""
        inputs, _ = _as_text(frame.select(read_by_statement(frame.columns)))
        sql = self._statement(tuple(inputs.columns))
        cursor = self._connection.cursor()  # a connection of its own: two chunks run at once
        try:
            cursor.register(TABLE, inputs.to_arrow())
            result = pl.from_arrow(cursor.sql(sql).to_arrow_table())
        finally:
            cursor.close()
        assert isinstance(result, pl.DataFrame)
        return frame.hstack(_restore(result, inputs, []).get_columns())


def read_by_statement(columns: list[str]) -> list[str]:
    """The input columns the facts-and-rules statement reads (the rest stay in polars)."""
    prefixes = ("q__", "u__", "lab_low__", "lab_high__", "t__")
    named = ("age", "sex", "hemolyzed", "meds_known", "unrecognized", CLASSES, "error")
    return [c for c in columns if c.startswith(prefixes) or c in named]


POSITION = "__position"  # Spark keeps no row order: each row's place, to put them back


class SparkFacts:
    """The same statement run by Spark SQL, on a session of this process (`spark_session`)."""

    dialect = "spark"

    def __init__(self, rs: Ruleset, analytes: list[str], lab_ranges: set[str], master: str | None = None) -> None:
        self.rs, self.analytes, self.lab_ranges = rs, analytes, lab_ranges
        self.session = spark_session(master)
        self._lock = threading.Lock()

    @functools.cache  # noqa: B019  (one per runner, for each distinct set of input columns)
    def _statement(self, inputs: tuple[str, ...]) -> str:
        return statement(self.rs, self.analytes, self.lab_ranges, list(inputs), TABLE).sql(self.dialect)

    def evaluate(self, frame: pl.DataFrame) -> pl.DataFrame:
        inputs, texts = _as_text(frame.with_row_index(POSITION))
        # unsigned integers are not Spark types: the class bits fit a signed BIGINT (bit 63 of
        # the mask, "a name the catalogue does not know", is read from `unrecognized` instead)
        unsigned = [n for n, t in inputs.schema.items() if t.is_unsigned_integer()]
        inputs = inputs.with_columns((pl.col(unsigned) & ((1 << 63) - 1)).cast(pl.Int64))
        sql = self._statement(tuple(inputs.columns))
        with self._lock:  # one temporary view name per session
            self.session.createDataFrame(inputs.to_arrow()).createOrReplaceTempView(TABLE)
            result = pl.from_arrow(self.session.sql(sql).toArrow())
        assert isinstance(result, pl.DataFrame)
        result = result.sort(POSITION).drop(POSITION)
        back = {n: frame.schema[n] for n in unsigned if n != POSITION and n in result.columns}
        return _restore(result.with_columns(pl.col(n).cast(t) for n, t in back.items()), frame, texts)


@functools.cache
def spark_session(master: str | None = None) -> Any:
    """One Spark session for the process: local (all cores, bound to loopback) unless a master
    URL is given. Whole-stage code generation is off: compiling one projection of every rule
    took 12-25 s against 2-2.6 s without it (measured for this project; INTERPRET_SPARK_CODEGEN
    and INTERPRET_SPARK_DRIVER_MEMORY change the two settings)."""
    import os
    import sys

    from pyspark.sql import SparkSession

    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)  # workers with this interpreter's packages
    builder = (
        SparkSession.builder.master(master or "local[*]")
        .appName("interpret")
        .config("spark.sql.codegen.wholeStage", os.environ.get("INTERPRET_SPARK_CODEGEN", "false"))
        .config("spark.driver.memory", os.environ.get("INTERPRET_SPARK_DRIVER_MEMORY", "4g"))
        .config("spark.ui.showConsoleProgress", "false")
        # a chunk handed over from Python may become a local relation, which this rule then
        # evaluates row by row in the optimizer (benchmarks/README.md: measured decisions)
        .config("spark.sql.optimizer.excludedRules", "org.apache.spark.sql.catalyst.optimizer.ConvertToLocalRelation")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.session.timeZone", "UTC")  # a time without an offset is UTC, as everywhere here
        .config("spark.sql.shuffle.partitions", "4")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.driver.bindAddress", os.environ["SPARK_LOCAL_IP"])
    )
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    return session
