"""The Databricks entry point (`interpret.spark.interpret_dataframe`) on Spark local mode:
a Spark DataFrame of the MIMIC-IV demo's wide join in, every cell `interpret batch` writes
for the same rows out. Skipped only where pyspark or Java is not installed."""

from __future__ import annotations

import polars as pl
import pytest
from typer.testing import CliRunner

from interpret.batch.run import engine_missing
from interpret.cli import app
from tests.test_batch import MIMIC_WIDE

if why := engine_missing("spark"):
    pytest.skip(why, allow_module_level=True)

ALLOW = ["subject_id", "hadm_id", "specimen_id"]
HISTORY = {"history": {"patient_key": "subject_id", "time": "charttime"}}


@pytest.fixture(scope="module")
def session():
    from interpret.sql.engines import spark_session

    return spark_session()


def _cli_output(tmp_path, mapping: dict | None) -> pl.DataFrame:
    args = ["batch", str(MIMIC_WIDE), "-o", str(tmp_path / "out.csv"), "--id-column", "specimen_id"]
    args += [part for a in ALLOW for part in ("--allow-identifier", a)]
    if mapping:
        (tmp_path / "map.yaml").write_text("history: {patient_key: subject_id, time: charttime}\n")
        args += ["--map", str(tmp_path / "map.yaml")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.stdout + result.stderr
    return pl.read_csv(tmp_path / "out.csv", infer_schema=False)


@pytest.mark.skipif(not MIMIC_WIDE.exists(), reason="../shared/data/mimic-iv-demo is not beside this checkout")
@pytest.mark.parametrize("mapping", [None, HISTORY], ids=["one panel", "with history"])
def test_interpret_dataframe_gives_the_batch_cells(session, tmp_path, mapping):
    from interpret.spark import interpret_dataframe

    df = session.read.csv(str(MIMIC_WIDE), header=True)
    out = interpret_dataframe(df, mapping=mapping, id_column="specimen_id", allow=ALLOW)
    got = pl.from_arrow(out.toArrow())
    expected = _cli_output(tmp_path, mapping)
    assert got.height == expected.height == 3011  # one row per input row
    assert got.columns == expected.columns
    got = got.drop("line").with_columns(pl.all().cast(pl.String)).sort("specimen_id")
    expected = expected.drop("line").sort("specimen_id")
    assert got.select(pl.all().fill_null("")).equals(expected.select(pl.all().fill_null("")))
    if mapping:
        assert int(got["findings"].str.contains("acute_kidney_injury").sum()) > 400


def test_interpret_dataframe_refuses_rows_never_drops_them(session):
    from interpret.spark import interpret_dataframe

    df = session.createDataFrame(
        [("3.1", "mmol/L", "45", "F"), ("25", "mmol/L", "45", "F"), ("2.9", "furlongs", "45", "F")],
        ["potassium", "potassium_unit", "age", "sex"],
    )
    got = pl.from_arrow(interpret_dataframe(df).toArrow()).sort("line")
    assert got.height == 3
    assert got["error"][0] is None and "hypokalemia" in got["findings"][0]
    assert "outside the plausible range for potassium" in got["error"][1]
    assert "furlongs" in got["error"][2]
