"""Parquet in and out (`interpret batch`): typed columns read as the cells a CSV would hold,
the output's format by its name; the same rows and values as the CSV run."""

from __future__ import annotations

from datetime import UTC, datetime

import polars as pl
import pytest
from typer.testing import CliRunner

from interpret.cli import app
from tests.test_batch import MIMIC_WIDE

ALLOW = ["--allow-identifier", "subject_id", "--allow-identifier", "hadm_id", "--allow-identifier", "specimen_id"]


def _batch(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["batch", *args])
    return result.exit_code, result.stdout + result.stderr


@pytest.mark.skipif(not MIMIC_WIDE.exists(), reason="../shared/data/mimic-iv-demo is not beside this checkout")
@pytest.mark.parametrize("engine", ["polars", "duckdb"])
def test_typed_parquet_gives_the_csv_results(tmp_path, engine):
    """The demo's wide join with real types (integers, floats, a datetime) as Parquet: every
    cell of the output is the CSV run's; `line` counts rows, not lines."""
    typed = pl.read_csv(MIMIC_WIDE, infer_schema_length=10_000, try_parse_dates=True)
    assert typed.schema["charttime"] == pl.Datetime("us") and typed.schema["sodium"] == pl.Int64
    typed.write_parquet(tmp_path / "wide.parquet")
    code, text = _batch(str(MIMIC_WIDE), "-o", str(tmp_path / "from_csv.csv"), *ALLOW)
    assert code == 0, text
    code, text = _batch(str(tmp_path / "wide.parquet"), "-o", str(tmp_path / "out.parquet"), "--engine", engine, *ALLOW)
    assert code == 0, text
    from_csv = pl.read_csv(tmp_path / "from_csv.csv", infer_schema=False)
    out = pl.read_parquet(tmp_path / "out.parquet")
    assert out.height == from_csv.height == 3011
    assert out["line"].to_list() == [int(n) - 1 for n in from_csv["line"]]
    as_text = out.drop("line").select(pl.all().cast(pl.String).fill_null(""))
    assert as_text.equals(from_csv.drop("line").select(pl.all().fill_null("")))
    assert out.schema["potassium_mmol_L"] == pl.Float64  # typed, not text


def test_parquet_times_with_a_zone_are_instants(tmp_path):
    """A zoned time column is a history time: the patient's earlier sodium is found, and the
    cell is the instant in UTC (09:30 in Paris in winter is 08:30 Z)."""
    from interpret.batch.read import as_text

    paris = pl.DataFrame({"t": [datetime(2026, 1, 2, 8, 30, tzinfo=UTC)]}).with_columns(
        pl.col("t").dt.convert_time_zone("Europe/Paris")
    )
    assert paris.select(as_text("t", paris.schema["t"])).item() == "2026-01-02T08:30:00Z"
    frame = pl.DataFrame(
        {
            "patient": ["p1", "p1"],
            "taken": [datetime(2026, 1, 1, 8, tzinfo=UTC), datetime(2026, 1, 2, 8, tzinfo=UTC)],
            "sodium": [118.0, 131.0],
            "sodium_unit": ["mmol/L", "mmol/L"],
        }
    ).with_columns(pl.col("taken").dt.convert_time_zone("Europe/Paris"))
    frame.write_parquet(tmp_path / "in.parquet")
    (tmp_path / "map.yaml").write_text("history: {patient_key: patient, time: taken}\n")
    code, text = _batch(
        str(tmp_path / "in.parquet"), "-o", str(tmp_path / "out.csv"), "--map", str(tmp_path / "map.yaml")
    )
    assert code == 0, text
    out = pl.read_csv(tmp_path / "out.csv", infer_schema=False)
    assert "rapid_sodium_rise" in (out["findings"][1] or "")  # 13 mmol/L in 24 h
    assert "rapid_sodium_rise" not in (out["findings"][0] or "")


def test_an_empty_parquet_record_is_a_row_refused_not_a_blank_line(tmp_path):
    """A CSV's blank line is no row; a Parquet record whose cells are all null is one: it
    comes out, refused with its reason, and the rows stay in order."""
    pl.DataFrame({"potassium": [3.1, None, 4.0], "potassium_unit": ["mmol/L", None, "mmol/L"]}).write_parquet(
        tmp_path / "in.parquet"
    )
    code, text = _batch(str(tmp_path / "in.parquet"), "-o", str(tmp_path / "out.csv"))
    assert code == 0, text
    out = pl.read_csv(tmp_path / "out.csv", infer_schema=False)
    assert out["line"].to_list() == ["1", "2", "3"]
    assert out["error"][1] == "no result to interpret" and out["error"][0] is None


def test_parquet_with_nested_columns_is_refused_by_name(tmp_path):
    pl.DataFrame({"potassium": [3.1], "meds": [["furosemide"]]}).write_parquet(tmp_path / "in.parquet")
    code, text = _batch(str(tmp_path / "in.parquet"), "-o", str(tmp_path / "out.csv"))
    assert code == 2 and "'meds'" in text and "lists or structs" in text


def test_a_broken_parquet_file_is_refused_clearly(tmp_path):
    (tmp_path / "in.parquet").write_bytes(b"PAR1" + b"\0" * 64)
    code, text = _batch(str(tmp_path / "in.parquet"), "-o", str(tmp_path / "out.csv"))
    assert code == 2 and "not a readable Parquet file" in text


# --- hostile Parquet: typed columns a CSV cannot carry ------------------------------------------

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

CELLS = {
    "float": st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True, width=64)),
    "int": st.one_of(st.none(), st.integers(min_value=-(2**63), max_value=2**63 - 1)),
    "text": st.one_of(
        st.none(), st.text(max_size=12), st.sampled_from(["3,4", "hemolyzed", "<2.0", "=1+1", "mmol/L", "mEq/L", "F"])
    ),
    "bool": st.one_of(st.none(), st.booleans()),
    "time": st.one_of(st.none(), st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2100, 1, 1))),
}
DTYPES = {"float": pl.Float64, "int": pl.Int64, "text": pl.String, "bool": pl.Boolean, "time": pl.Datetime("us")}
HEADERS = ["potassium", "potassium_unit", "sodium", "sodium_unit", "age", "sex", "hemolyzed", "medications", "taken"]


@st.composite
def typed_frames(draw):
    rows = draw(st.integers(min_value=0, max_value=12))
    columns = {}
    for header in draw(st.lists(st.sampled_from(HEADERS), min_size=1, max_size=len(HEADERS), unique=True)):
        kind = draw(st.sampled_from(list(CELLS)))
        columns[header] = pl.Series(
            header, draw(st.lists(CELLS[kind], min_size=rows, max_size=rows)), dtype=DTYPES[kind]
        )
    return pl.DataFrame(columns)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(frame=typed_frames())
def test_any_typed_parquet_gives_a_row_per_row_or_a_clear_refusal(tmp_path, frame):
    """Any mix of floats (NaN, inf), 64-bit integers, text, booleans, times and nulls in any
    of the columns: either the whole file is refused with a reason (exit 2: a missing unit
    source, no result column) or every row comes out, in order, refused rows with a reason;
    never a crash."""
    path = tmp_path / "in.parquet"
    frame.write_parquet(path)
    out = tmp_path / "out.parquet"
    code, text = _batch(str(path), "-o", str(out))
    assert code in (0, 2), text
    if code == 2:
        assert text.strip() and "Traceback" not in text
        return
    result = pl.read_parquet(out)
    assert result.height == frame.height
    assert result["line"].to_list() == list(range(1, frame.height + 1))
    interpreted = result.filter(pl.col("error").is_null())
    assert interpreted.height + result["error"].is_not_null().sum() == frame.height
