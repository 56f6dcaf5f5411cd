"""The SQL runner (interpret/sql): the same facts and rules as SQL, for every dialect.

The contract suite runs it on duckdb (tests/test_runners.py). Here: the dialect traps, each
as the text a dialect must receive (written by hand, not produced by the code); the printed
statement of `interpret sql` run unchanged on duckdb against the polars runner's answers;
and `--engine duckdb` on the MIMIC-IV demo, byte for byte the polars engine's output.
"""

from __future__ import annotations

import re

import duckdb
import polars as pl
import pytest
from typer.testing import CliRunner

from interpret.cli import app
from interpret.ruleset import conditions as c
from interpret.sql.ops import SqlOps, column
from interpret.sql.query import for_dialect
from interpret.sql.rules import SqlRules
from tests.test_batch import MIMIC_HOSP, MIMIC_WIDE, batch, mimic_long

OPS = SqlOps()


def test_numbers_are_doubles_in_every_dialect():
    """A bare 3.5 is a DECIMAL to Spark and Postgres: every constant is cast to the float type."""
    limit = OPS.by_key(column("u__potassium"), {"mmol/L": 3.5, "mEq/L": 3.5}, None)
    assert (
        limit.sql("spark")
        == "CASE WHEN `u__potassium` = 'mmol/L' THEN CAST(3.5 AS DOUBLE) WHEN `u__potassium` = 'mEq/L' THEN CAST(3.5 AS DOUBLE) ELSE NULL END"
    )
    assert "CAST(3.5 AS FLOAT64)" in limit.sql("bigquery")
    assert "CAST(3.5 AS DOUBLE PRECISION)" in limit.sql("postgres")


def test_a_status_test_is_unknown_where_the_value_is_missing(interpreter):
    rules = SqlRules(interpreter.ruleset)
    node = c.StatusIn("potassium", frozenset({"low", "critical_low"}), None)
    assert rules.condition(node).sql("duckdb") == (
        'CASE WHEN "q__potassium" IS NULL THEN NULL '
        "ELSE COALESCE(\"s__potassium\" IN ('critical_low', 'low'), FALSE) END"
    )


def test_medication_classes_are_bits_in_every_dialect(interpreter):
    """Snowflake has no `&` operator on integers: BITAND."""
    rules = SqlRules(interpreter.ruleset)
    bit = rules.class_bits["loop_diuretic"]
    node = c.Taking(("loop_diuretic",))
    snowflake = rules.condition(node).sql("snowflake")
    assert f'(BITAND("m__classes", CAST({bit} AS BIGINT))) <> CAST(0 AS BIGINT)' in snowflake
    assert snowflake.startswith('CASE WHEN "meds_known" THEN')
    assert f"(`m__classes` & CAST({bit} AS BIGINT)) <> CAST(0 AS BIGINT)" in rules.condition(node).sql("spark")


def test_postgres_rounds_through_numeric():
    """Postgres has no ROUND(double precision, integer): the statement would not even plan."""
    from sqlglot import exp

    select = exp.select(OPS.named(OPS.round(column("a") + 1, 9), "b")).from_("t")
    assert for_dialect(select, "postgres").split() == [
        "SELECT", "CAST(ROUND(CAST(\"a\"", "+", "1", "AS", "DECIMAL(38,", "18)),", "9)", "AS", "DOUBLE",
        "PRECISION)", "AS", '"b"', "FROM", "t",
    ]  # fmt: skip
    assert for_dialect(select, "duckdb").split() == ["SELECT", 'ROUND("a"', "+", "1,", "9)", "AS", '"b"', "FROM", "t"]


def test_min_and_max_do_not_lean_on_least_greatest():
    """LEAST/GREATEST treat NULL differently in Postgres, BigQuery and Spark: a CASE instead."""
    assert OPS.minimum(column("r"), 1.0).sql("bigquery") == (
        "CASE WHEN `r` IS NULL THEN CAST(1.0 AS FLOAT64) WHEN `r` < CAST(1.0 AS FLOAT64) THEN `r` "
        "ELSE CAST(1.0 AS FLOAT64) END"
    )


def _cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout + result.stderr


def test_interpret_sql_refuses_an_unknown_dialect_or_analyte():
    code, text = _cli("sql", "--dialect", "oracle")
    assert code == 2 and "known are duckdb, spark, bigquery, snowflake, postgres" in text
    code, text = _cli("sql", "--analyte", "troponin")
    assert code == 2 and "troponin" in text


@pytest.mark.parametrize("dialect", ["duckdb", "spark", "bigquery", "snowflake", "postgres"])
def test_interpret_sql_names_the_ruleset_and_parses_back(interpreter, dialect):
    """The printed statement names its ruleset and is valid SQL of its dialect (read back by sqlglot)."""
    import sqlglot

    code, text = _cli("sql", "--dialect", dialect)
    assert code == 0
    assert f"ruleset {interpreter.ruleset.version} (sha256 {interpreter.ruleset.sha256})" in text.splitlines()[0]
    assert text.splitlines()[1] == "-- " + " ".join(interpreter.ruleset.meta.short_disclaimer.split())
    parsed = sqlglot.parse_one(text, read=dialect)
    assert parsed.find(sqlglot.exp.Select) is not None


@pytest.mark.skipif(not MIMIC_WIDE.exists(), reason="../shared/data/mimic-iv-demo is not beside this checkout")
@pytest.mark.parametrize("dialect", ["duckdb", "spark"])
def test_printed_statement_runs_unchanged(interpreter, tmp_path, dialect):
    """What a warehouse team would do: the validated panels as a table, `interpret sql` run on
    it as printed. The masks it gives are the polars runner's, row for row, on the MIMIC demo."""
    from interpret.batch.job import open_input, wide_with_history
    from interpret.batch.mapping import MappingFile
    from interpret.batch.read import ROW
    from interpret.batch.run import BatchRun
    from interpret.sql.query import validated_columns

    rs = interpreter.ruleset
    allow = ["subject_id", "hadm_id", "specimen_id"]
    mapping = MappingFile.model_validate({"history": {"patient_key": "subject_id", "time": "charttime"}})
    source, plan = open_input(rs, MIMIC_WIDE, mapping, fmt=None, units=[], id_column=None, allow=allow)
    whole, plan = wide_with_history(rs, plan, source, mapping, None)
    run = BatchRun(rs, plan, source)
    validated = run.validated(whole)
    analytes = list(plan.analyte_columns)
    wanted = validated_columns(rs, analytes, set(), history=True)
    table = validated.rename({ROW: "line"}).select(
        pl.col(n).cast(pl.String) if isinstance(validated.schema.get(n), pl.Enum) else pl.col(n) for n in wanted
    )
    chosen = [part for a in analytes for part in ("--analyte", a)]
    code, text = _cli("sql", "--dialect", _engine(dialect), "--table", "validated_panels", "--history", *chosen)
    assert code == 0
    from_sql = _run_printed(dialect, text.rstrip().rstrip(";"), table)
    reference = run.rules.evaluate(run.columns.facts(validated).pipe(_all_quantities))
    assert from_sql.height == reference.height == 3011
    for mask in ("__fired", "__raised", "__na"):
        assert from_sql[mask].cast(pl.UInt64).to_list() == reference[mask].to_list(), mask
    assert int((reference["__fired"] != 0).sum()) > 2000  # the demo's panels do fire rules
    aki = 1 << next(i for i, r in enumerate(rs.rules) if r.code == "acute_kidney_injury")
    assert int((from_sql["__fired"] & aki != 0).sum()) > 400  # across time too (the t__ columns)


def _run_printed(dialect: str, text: str, table: pl.DataFrame) -> pl.DataFrame:
    """The printed statement, as a warehouse team would run it, over `table`."""
    if dialect == "duckdb":
        con = duckdb.connect()
        con.register("validated_panels", table.to_arrow())
        return pl.from_arrow(con.sql(text).to_arrow_table())
    from interpret.sql.engines import spark_session

    session = spark_session()
    signed = table.with_columns((pl.col(pl.UInt64, pl.UInt32) & ((1 << 63) - 1)).cast(pl.Int64))
    session.createDataFrame(signed.to_arrow()).createOrReplaceTempView("validated_panels")
    return pl.from_arrow(session.sql(text).toArrow()).sort("line")


def _all_quantities(frame: pl.DataFrame) -> pl.DataFrame:
    from interpret.batch.columns import ensure_quantities

    return ensure_quantities(frame)


def _engine(name: str) -> str:
    """`name`, or the test is skipped where it cannot run (the command line's own check)."""
    from interpret.batch.run import engine_missing

    if why := engine_missing(name):
        pytest.skip(why)
    return name


ENGINES = ["duckdb", "spark"]


@pytest.mark.skipif(not MIMIC_WIDE.exists(), reason="../shared/data/mimic-iv-demo is not beside this checkout")
@pytest.mark.parametrize("engine", ENGINES)
def test_engine_gives_the_polars_output_on_the_mimic_wide_join(interpreter, tmp_path, engine):
    """Every option with every engine: the output, the summary page and `--details` too."""
    data, runs = MIMIC_WIDE.read_bytes(), {}
    for name in ("polars", _engine(engine)):
        (tmp_path / name).mkdir()
        runs[name] = batch(
            interpreter, tmp_path / name, data, id_column="specimen_id", engine=name,
            summary=tmp_path / name / "summary.html", details=tmp_path / name / "details.jsonl",
        )  # fmt: skip
    assert runs["polars"].code == runs[engine].code == 0
    assert runs[engine].out.equals(runs["polars"].out)
    assert runs[engine].out.height == 3011
    for made in ("summary.html", "details.jsonl"):
        assert (tmp_path / engine / made).read_text() == (tmp_path / "polars" / made).read_text(), made


@pytest.mark.skipif(not MIMIC_HOSP.exists(), reason="../shared/data/mimic-iv-demo is not beside this checkout")
@pytest.mark.parametrize("engine", ENGINES)
def test_engine_gives_the_polars_output_on_the_mimic_long_export(interpreter, tmp_path, engine):
    """With histories (acute kidney injury, sodium changes) and orders' start times."""
    patients = '"patients_file": {patient_key: subject_id, age: anchor_age, age_year: anchor_year, sex: gender}\n'
    analytes = 'analytes: {"50971": potassium, "50983": sodium, "50912": creatinine, "50960": magnesium}\n' + patients
    runs = {}
    for engine in ("polars", "duckdb"):
        (tmp_path / engine).mkdir()
        runs[engine] = mimic_long(
            interpreter, tmp_path / engine, analytes, patients=MIMIC_HOSP / "patients.csv.gz", engine=engine
        )
    assert runs["polars"].code == runs["duckdb"].code == 0
    assert runs["duckdb"].out.equals(runs["polars"].out)
    fired = runs["duckdb"].out["findings"].str.contains("acute_kidney_injury").sum()
    assert fired > 400  # the demo's AKI panels (tests/test_batch.py pins the exact count)


def test_unknown_engine_is_refused_clearly(interpreter, tmp_path):
    run = batch(interpreter, tmp_path, "potassium,potassium_unit\n3.1,mmol/L\n", engine="oracle")
    assert run.code == 2 and "known engines are polars, duckdb, spark" in run.stderr


def test_interpret_sql_takes_its_columns_from_a_mapping(tmp_path):
    """The MIMIC long mapping names four analytes and a patient key with a time: the statement
    reads those analytes and the t__ columns across time, and no other analyte."""
    (tmp_path / "mimic.yaml").write_text(
        "long: {panel_key: [subject_id, specimen_id], patient_key: subject_id, analyte: itemid,\n"
        "       value: valuenum, unit: valueuom, time: charttime}\n"
        'analytes: {"50971": potassium, "50983": sodium, "50912": creatinine, "50960": magnesium}\n'
    )
    code, text = _cli("sql", "--map", str(tmp_path / "mimic.yaml"))
    assert code == 0, text
    lines = text.splitlines()
    reads = lines[next(i for i, line in enumerate(lines) if line.startswith("-- Reads")) + 1]  # its columns
    assert all(f"q__{a}" in reads for a in ("potassium", "sodium", "creatinine", "magnesium"))
    assert "q__calcium" not in reads and "q__glucose" not in reads and "t__0" in reads


def test_spark_without_java_is_refused_clearly(interpreter, tmp_path, monkeypatch):
    """Not a Java stack trace from deep inside pyspark: what to install, before any row is read."""
    monkeypatch.setenv("PATH", str(tmp_path))  # no java on it
    monkeypatch.delenv("JAVA_HOME", raising=False)
    run = batch(interpreter, tmp_path, "potassium,potassium_unit\n3.1,mmol/L\n", engine="spark")
    assert run.code == 2 and "--engine spark needs" in run.stderr


def test_postgres_computes_each_layer_once_and_powers_only_positive_bases(interpreter):
    """Postgres inlines a CTE read once and shares no subexpression (the statement ran 20
    minutes on 3,011 rows): every layer MATERIALIZED. A power of a negative base (a refused
    row's creatinine in the eGFR) is an error on Postgres and BigQuery: NULL instead."""
    code, text = _cli("sql", "--dialect", "postgres")
    assert code == 0 and text.count("AS MATERIALIZED (") == 4  # panels_in, facts_1, facts_2, conditions
    powers = text.count("POWER(")
    assert powers >= 3 and len(re.findall(r"> 0\s+THEN POWER\(", text)) == powers  # every one guarded
    code, text = _cli("sql", "--dialect", "duckdb")
    assert "MATERIALIZED" not in text
