"""A Spark DataFrame of wide panels in, the batch output as a Spark DataFrame out: for
Databricks notebooks and Spark jobs whose data never leave the cluster.

    from interpret.spark import interpret_dataframe
    out = interpret_dataframe(spark.table("lab.panels_wide"), mapping={"history": {...}},
                              units={"potassium": "mEq/L"}, id_column="specimen_id")

Each partition is interpreted where it lies by Spark's `mapInArrow`, with the batch's own
steps (`BatchRun.process`: validation, facts, rules, wording), so every cell is the one
`interpret batch` writes for the same row. With `history:` in the mapping the rows are first
partitioned by patient, so that each patient's earlier panels are in the same partition.
`line` is the row's place in the DataFrame (Spark keeps no file lines); `error` says why a
row was refused, and no row is dropped.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import polars as pl

from interpret.batch.job import parse_units, with_history
from interpret.batch.mapping import MappingFile, Plan, make_plan
from interpret.batch.read import OVERFLOW, ROW, CsvSource
from interpret.batch.run import BatchRun
from interpret.batch.serial import AKI_COLUMNS
from interpret.ruleset import Ruleset, load_ruleset

POSITION = "__interpret_row"


def interpret_dataframe(
    df: Any,
    mapping: dict[str, Any] | None = None,
    units: dict[str, str] | None = None,
    id_column: str | None = None,
    allow: list[str] | None = None,
    rules: str | None = None,
) -> Any:
    """The batch output (one row per input row) of a Spark DataFrame of wide panels.

    `mapping` is a mapping file's content (rules/README: headers, units, `history`);
    `units` a unit for whole columns, as `--unit`; `rules` a site ruleset's folder."""
    from pyspark.sql import functions as F
    from pyspark.sql.pandas.types import from_arrow_schema

    rs = _ruleset(rules)
    spec = MappingFile.model_validate(mapping or {})
    options = [f"{a}={u}" for a, u in (units or {}).items()]
    plan = make_plan(list(df.columns), spec, rs, parse_units(options), id_column, "wide", list(allow or []))
    headers = list(df.columns)
    texts = df.select(*(F.col(f"`{h}`").cast("string").alias(h) for h in headers))
    texts = texts.withColumn(POSITION, F.monotonically_increasing_id() + 1)
    if spec.history is not None:  # each patient's panels in one partition
        texts = texts.repartition(F.col(f"`{spec.history.patient_key}`"))
    empty = _interpret(rules, plan, spec, headers, _empty(headers))
    schema = from_arrow_schema(empty.to_arrow().schema)

    def per_partition(batches: Iterator[Any]) -> Iterator[Any]:
        import pyarrow as pa

        tables = [pa.Table.from_batches([b]) for b in batches]
        if not tables:
            return
        frame = pl.from_arrow(pa.concat_tables(tables))
        assert isinstance(frame, pl.DataFrame)
        out = _interpret(rules, plan, spec, headers, frame)
        yield from out.to_arrow().to_batches()

    return texts.mapInArrow(per_partition, schema)


@functools.cache
def _ruleset(rules: str | None) -> Ruleset:
    """One ruleset per process (the driver's and each executor's), loaded from its folder."""
    return load_ruleset(Path(rules) if rules else None)


def _empty(headers: list[str]) -> pl.DataFrame:
    return pl.DataFrame(schema={**dict.fromkeys(headers, pl.String), POSITION: pl.Int64})


def _interpret(
    rules: str | None, plan: Plan, spec: MappingFile, headers: list[str], frame: pl.DataFrame
) -> pl.DataFrame:
    """One partition through the batch's steps; enum columns as text (Spark has no enums)."""
    rs = _ruleset(rules)
    source = CsvSource(Path("<dataframe>"), headers, ",", "spark", header_line=0)
    frame = frame.with_columns(pl.col(h).fill_null("") for h in headers)
    frame = frame.rename({POSITION: ROW})  # 64 bits: Spark row ids are not small
    frame = frame.with_columns(pl.lit(None, dtype=pl.String).alias(c) for c in OVERFLOW)
    if spec.history is not None and frame.height:
        history = spec.history
        frame = frame.with_columns(pl.col(history.patient_key).alias("__patient"), pl.col(history.time).alias("__time"))
        frame, plan = with_history(rs, plan, source, frame)
    elif spec.history is not None:  # no rows (the schema is worked out so): the same columns
        stage, baseline = AKI_COLUMNS
        frame = frame.with_columns(pl.lit(None, pl.Int64).alias(stage), pl.lit(None, pl.Float64).alias(baseline))
        plan = replace(plan, history=True)
    out, _ = BatchRun(rs, plan, source).process(frame)
    enums = [n for n, t in out.schema.items() if isinstance(t, pl.Enum | pl.Categorical)]
    return out.with_columns(pl.col(enums).cast(pl.String), pl.col("line").cast(pl.Int64))
