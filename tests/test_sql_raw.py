"""`interpret sql --raw`: the export's own table validated in SQL, then the facts and rules.

What a warehouse team does: print the statement for their table (a sample of it gives the
columns and medication entries), run it where the data are. Checked against `interpret
batch` (the polars runner) on the same file, row by row: the findings (the `__fired` mask
decoded by the rule bits the header prints), the same rows refused, each refusal at the same
place. On the MIMIC-IV demo's wide join (real data) and on a file of hostile cells; on duckdb
and on Spark local mode (skipped only where pyspark or Java is missing).
"""

from __future__ import annotations

import random
import re
from pathlib import Path

import duckdb
import polars as pl
import pytest

from tests.test_batch import MIMIC_HOSP, MIMIC_WIDE, batch
from tests.test_sql import _cli, _engine

ANALYTES = ("potassium", "magnesium", "creatinine")


def _raw_statement(sample: Path, dialect: str, *options: str) -> str:
    code, text = _cli("sql", "--raw", str(sample), "--dialect", dialect, "--table", "export", *options)
    assert code == 0, text
    return text.rstrip().rstrip(";")


ENGINES = ["duckdb", "spark", "postgres"]


@pytest.fixture(scope="module")
def postgres():
    """A PostgreSQL server of this machine's (tests/postgres_server.py), for the module."""
    from tests import postgres_server

    if why := postgres_server.missing():
        pytest.skip(why)
    with postgres_server.server() as connection:
        yield connection


def _dialect(name: str, request) -> str:
    """`name`, with its engine at hand, or the test is skipped (never faked)."""
    if name == "postgres":
        global POSTGRES
        POSTGRES = request.getfixturevalue("postgres")
        return name
    return _engine(name)


POSTGRES: dict | None = None  # the module's server, once a test asked for it


def _run_postgres(statement: str, tables: dict[str, Path]) -> pl.DataFrame:
    """Each CSV loaded as a table of TEXT columns (COPY), then the statement as printed."""
    import gzip

    import psycopg

    assert POSTGRES is not None
    with psycopg.connect(**POSTGRES, autocommit=True) as connection:
        connection.execute("SET statement_timeout = '180s'")  # a runaway plan fails, never hangs
        for name, path in tables.items():
            data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
            header = data.split(b"\n", 1)[0].decode().strip().split(",")
            columns = ", ".join(f'"{h}" TEXT' for h in header)
            connection.execute(f"DROP TABLE IF EXISTS {name}")
            connection.execute(f"CREATE TABLE {name} ({columns})")
            with connection.cursor().copy(f"COPY {name} FROM STDIN (FORMAT csv, HEADER true)") as copy:
                copy.write(data)
        cursor = connection.execute(statement)
        names = [d.name for d in cursor.description]
        rows = cursor.fetchall()
    return pl.DataFrame(rows, schema=names, orient="row", infer_schema_length=None)


def _run(dialect: str, statement: str, csv: Path, **others: Path) -> pl.DataFrame:
    """The statement over the CSV loaded as a table of text cells, as a warehouse would hold
    it (`export`; `others`: more tables by name)."""
    tables = {"export": csv, **others}
    if dialect == "postgres":
        frame = _run_postgres(statement, tables)
    elif dialect == "duckdb":
        con = duckdb.connect()
        for name, path in tables.items():
            con.execute(f"CREATE TABLE {name} AS SELECT * FROM read_csv('{path}', all_varchar = true, header = true)")
        frame = pl.from_arrow(con.sql(statement).to_arrow_table())
    else:
        from interpret.sql.engines import spark_session

        session = spark_session()
        for name, path in tables.items():
            session.read.csv(str(path), header=True, inferSchema=False).createOrReplaceTempView(name)
        frame = pl.from_arrow(session.sql(statement).toArrow())
    assert isinstance(frame, pl.DataFrame)
    return frame.with_columns(pl.col("line").cast(pl.String))


def _codes(rs, mask: int | None) -> str:
    return ";".join(sorted(r.code for i, r in enumerate(rs.rules) if mask is not None and mask >> i & 1))


def _places(error: str | None, plan_analytes: tuple[str, ...]) -> set[str]:
    """Where each refusal of an error is ("potassium (column 'K')", "age", ...): the batch's
    sentences and the SQL's codes both start each refusal with its place."""
    if error is None:
        return set()
    analytes = "|".join(plan_analytes)
    found = set(re.findall(rf"(?:^|; )((?:{analytes}) \(column '[^']*'\)|age|sex|hemolyzed): ", error))
    return found | ({"no results"} if "no result" in error or "no_results" in error else set())


def _compare(
    interpreter, tmp_path: Path, csv: Path, dialect: str, analytes: tuple[str, ...], mapping: Path | None = None
) -> pl.DataFrame:
    rs = interpreter.ruleset
    mapped = ["--map", str(mapping), "--allow-identifier", "subject_id"] if mapping else []
    statement = _raw_statement(csv, dialect, "--id-column", "id", *mapped)
    from_sql = _run(dialect, statement, csv)
    options = {"mapping_path": mapping, "allow": "subject_id"} if mapping else {}
    run = batch(interpreter, tmp_path, csv.read_bytes(), name="export.csv", id_column="id", **options)
    assert run.code == 0, run.stderr
    expected = run.out.select("id", "findings", "error")
    got = from_sql.select(pl.col("line").alias("id"), "__fired", pl.col("error").alias("sql_error"))
    joined = expected.join(got, on="id", how="left", validate="1:1")
    assert joined.height == expected.height and joined["__fired"].null_count() <= joined["error"].null_count()
    for row in joined.iter_rows(named=True):
        assert (row["error"] is None) == (row["sql_error"] is None), row
        assert _places(row["error"], analytes) == _places(row["sql_error"], analytes), row
        if row["error"] is None:
            wanted = ";".join(sorted(c for c in (row["findings"] or "").split(";") if c))
            assert _codes(rs, row["__fired"]) == wanted, row
    return joined


def _mimic_with_id(tmp_path: Path, keep_patient: bool = False) -> Path:
    """The MIMIC wide join, its specimen id as the row key (`id`) and its other ids dropped
    (but the patient's, `keep_patient`: the history's key)."""
    frame = pl.read_csv(MIMIC_WIDE, infer_schema=False).rename({"specimen_id": "id"})
    path = tmp_path / "mimic.csv"
    frame.drop("hadm_id", *([] if keep_patient else ["subject_id"])).write_csv(path)
    return path


def _history_mapping(tmp_path: Path, patient: str = "subject_id", time: str = "charttime") -> Path:
    path = tmp_path / "history.yaml"
    path.write_text(f"history: {{patient_key: {patient}, time: {time}}}\n")
    return path


@pytest.mark.skipif(not MIMIC_WIDE.exists(), reason="../shared/data/mimic-iv-demo is not beside this checkout")
@pytest.mark.parametrize("dialect", ENGINES)
def test_raw_sql_works_out_the_conditions_across_time_as_the_batch_does(interpreter, tmp_path, dialect, request):
    """The MIMIC wide join with its patients' histories (mapping `history:`): the rules across
    time (acute kidney injury, refractory hypokalaemia, sodium corrected too fast) fire on the
    same panels, by the SQL's self-join of earlier panels as by the batch's rolling windows."""
    csv = _mimic_with_id(tmp_path, keep_patient=True)
    joined = _compare(
        interpreter,
        tmp_path,
        csv,
        _dialect(dialect, request),
        ("potassium", "magnesium", "sodium"),
        _history_mapping(tmp_path),
    )
    aki = joined.filter(pl.col("findings").str.contains("acute_kidney_injury")).height
    assert aki > 400  # the demo's admissions have creatinine rises: the comparison has cases


@pytest.mark.skipif(not MIMIC_WIDE.exists(), reason="../shared/data/mimic-iv-demo is not beside this checkout")
@pytest.mark.parametrize("dialect", ENGINES)
def test_raw_sql_gives_the_batch_findings_on_the_mimic_wide_join(interpreter, tmp_path, dialect, request):
    joined = _compare(
        interpreter,
        tmp_path,
        _mimic_with_id(tmp_path),
        _dialect(dialect, request),
        ("potassium", "magnesium", "sodium"),
    )
    assert joined.height == 3011
    assert joined.filter(pl.col("findings") != "").height > 2000  # the demo's panels do fire rules


CELLS = ["", "4.1", "3.2", " 5.0 ", "3,2", "<2", ">10", "abc", "HEMOLYZED", " haemolysed ", "-1", "45", "1e3"]
CELLS += ["1e999", "nan", "inf", "+.5", "5.", "0x10", "1_000", "٣.٤", "=1+1", "1" * 40]
UNITS = ["mmol/L", "MMOL/L", "mEq/l", " mg/dL ", "mg/dl", "umol/L", "µmol/L", "μmol/L", "", "xyz", "mmol"]
AGES = ["", "52", "17", "18", "120", "abc", " 70 ", "65.5", "-3"]
SEXES = ["", "F", "m", "Female", "MALE", "x", "U", "unknown", "other", "q"]
HEMOLYZED = ["", "no", "YES", "y", "0", "1", "hemolyzed", "not hemolyzed", "maybe"]
DRUGS = ["furosemide 40 mg", "Lasix", "omeprazole", "digoxin 125 mcg", "zzzunknown", "", " spironolactone "]


GOOD = {  # plausible values in a unit of each analyte: rows that are read, to fire rules on
    "potassium": (["2.9", "3.4", "4.1", "5.8", "6.9"], ["mmol/L", "mEq/L", "MMOL/L"]),
    "magnesium": (["0.5", "0.8", "1.9", "2.4", "4.1"], ["mg/dL", "mmol/L", "mEq/L"]),
    "creatinine": (["60", "88", "250", "1.1", "3.2"], ["umol/L", "µmol/L", "μmol/L", "mg/dL", "mg/dl"]),
}


def _hostile_file(path: Path, rows: int = 600, seed: int = 5) -> Path:
    """Rows of plausible cells, about half of them with one cell or more made hostile."""
    rng = random.Random(seed)
    header = "id,potassium,potassium_unit,magnesium,magnesium_unit,creatinine,creatinine_unit,age,sex,hemolyzed"
    lines = [header + ",medications"]
    hostile = [*[CELLS, UNITS] * len(ANALYTES), AGES, SEXES, HEMOLYZED]
    for i in range(rows):
        cells = []
        for analyte in ANALYTES:
            values, units = GOOD[analyte]
            cells += [rng.choice(values), rng.choice(units)]
        cells += [rng.choice(["", "45", "71", "88"]), rng.choice(["F", "M", ""]), rng.choice(["no", "yes", ""])]
        while rng.random() < 0.5:
            field = rng.randrange(len(cells))
            cells[field] = rng.choice(hostile[field])
        meds = ";".join(rng.sample(DRUGS, rng.randint(0, 3)))
        lines.append(",".join([f"r{i}", *(f'"{c}"' if "," in c else c for c in [*cells, meds])]))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize("dialect", ENGINES)
def test_raw_sql_refuses_and_reads_hostile_cells_as_the_batch_does(interpreter, tmp_path, dialect, request):
    """Words, bounds, decimal commas, overflowing exponents, non-ASCII digits, odd unit
    spellings (µ and μ), sex and yes/no codes: the same rows refused at the same places, and
    every other row's findings the batch's."""
    joined = _compare(
        interpreter, tmp_path, _hostile_file(tmp_path / "hostile.csv"), _dialect(dialect, request), ANALYTES
    )
    refused = joined["error"].is_not_null().sum()
    assert 100 < refused < joined.height - 50  # both kinds of row are there to compare


def test_raw_sql_reads_units_as_the_ruleset_does(interpreter):
    """Every unit spelling of the ruleset, as written, in capitals and in lower case: the SQL's
    CASE list gives the key `UnitTable.resolve` gives (NULL where it gives none)."""
    from sqlglot import exp

    from interpret.batch.mapping import Plan
    from interpret.sql.raw import _unit

    rs = interpreter.ruleset
    exact, _ = rs.units.spellings()
    con = duckdb.connect()
    for analyte in ("potassium", "creatinine", "magnesium", "glucose"):
        plan = Plan(format="wide", analyte_columns={analyte: analyte}, unit_columns={analyte: "u"})
        expression = _unit(rs, plan, analyte).sql("duckdb")
        for spelling in [*exact, *(s.upper() for s in exact), *(s.lower() for s in exact), "nonsense"]:
            key = rs.units.resolve(spelling)
            wanted = key if key in rs.analytes[analyte].units else None
            cell = exp.Literal.string(spelling).sql("duckdb")
            got = con.execute(f'SELECT {expression} FROM (SELECT {cell} AS "__tu_{analyte}")').fetchall()[0][0]
            assert got == wanted, (analyte, spelling)


@pytest.mark.parametrize("dialect", ["duckdb", "spark", "bigquery", "snowflake", "postgres"])
def test_raw_sql_is_valid_sql_of_each_dialect(interpreter, tmp_path, dialect):
    """Every dialect's statement parses back, names its ruleset, and carries the entries'
    mapping table and the query for the table's own distinct entries."""
    import sqlglot

    text = _raw_statement(_hostile_file(tmp_path / "h.csv", rows=40), dialect, "--id-column", "id")
    rs = interpreter.ruleset
    assert f"ruleset {rs.version} (sha256 {rs.sha256})" in text.splitlines()[0]
    parsed = sqlglot.parse_one(text, read=dialect)
    table = sqlglot.exp.Unnest if dialect == "bigquery" else sqlglot.exp.Values  # BigQuery: UNNEST of STRUCTs
    assert any("furosemide 40 mg" in t.sql(dialect) for t in parsed.find_all(table))
    assert "'furosemide 40 mg'" in text and "distinct entries" in text
    if dialect == "postgres":  # sqlglot writes SPLIT, which Postgres does not have
        assert "STRING_TO_ARRAY(" in text and "SPLIT(" not in text.replace("STRING_TO_ARRAY(", "")


@pytest.mark.parametrize("dialect", ["duckdb", "spark", "bigquery", "snowflake", "postgres"])
def test_raw_sql_across_time_is_valid_sql_of_each_dialect(tmp_path, dialect):
    """With a history: the earlier panels' self-join, and epoch seconds in each dialect's words
    (sqlglot writes TIME_TO_UNIX for BigQuery, which has UNIX_SECONDS)."""
    import sqlglot

    mapping = _history_mapping(tmp_path)
    options = ("--id-column", "id", "--map", str(mapping), "--allow-identifier", "subject_id")
    text = _raw_statement(_timeline(tmp_path / "t.csv"), dialect, *options)
    parsed = sqlglot.parse_one(text, read=dialect)
    assert any(cte.alias == "earlier_panels" for cte in parsed.find_all(sqlglot.exp.CTE))
    epoch = {
        "duckdb": "EPOCH(",
        "spark": "UNIX_TIMESTAMP(",
        "bigquery": "UNIX_SECONDS(CAST(TRIM(CAST(`r`.`charttime` AS STRING)) AS TIMESTAMP))",  # not DATETIME
        "postgres": "DATE_PART('epoch'",
    }
    epoch["snowflake"] = "EXTRACT(epoch_second FROM"
    assert epoch[dialect] in text and "TIME_TO_UNIX" not in text


def test_raw_sql_says_what_it_cannot_read(tmp_path):
    sample = tmp_path / "s.csv"
    sample.write_text("potassium,potassium_unit\n4.1,mmol/L\n")
    code, text = _cli("sql", "--raw", str(sample))
    assert code == 2 and "--id-column" in text
    code, text = _cli("sql", "--raw", str(tmp_path / "missing.csv"), "--id-column", "id")
    assert code == 2 and "missing.csv" in text
    long = tmp_path / "long.csv"
    long.write_text("subject_id,specimen_id,itemid,valuenum,valueuom,charttime\np,s,50971,3.1,mEq/L,2026-01-01\n")
    mapping = tmp_path / "long.yaml"
    mapping.write_text(LONG_MAPPING)
    options = ("--map", str(mapping), "--allow-identifier", "subject_id", "--orders-table", "orders")
    code, text = _cli("sql", "--raw", str(long), *options)
    assert code == 2 and "--orders-table needs `medications_file:` in the mapping" in text
    mapping.write_text(LONG_MAPPING.replace("time: charttime}", "time: charttime, comment: comments}"))
    long.write_text(
        "subject_id,specimen_id,itemid,valuenum,valueuom,charttime,comments\np,s,50971,3.1,mEq/L,2026-01-01,\n"
    )
    code, text = _cli("sql", "--raw", str(long), "--map", str(mapping), "--allow-identifier", "subject_id")
    assert code == 2 and "long.comment (haemolysis written in the laboratory's comments) is read by" in text


def test_an_entry_missing_from_the_mapping_table_is_not_recognised(interpreter, tmp_path):
    """An entry the printed statement never saw is counted as not recognised (the rule that
    lists unrecognised medications fires), never dropped."""
    sample = tmp_path / "sample.csv"
    sample.write_text("id,potassium,potassium_unit,medications\na,4.1,mmol/L,furosemide\n")
    table = tmp_path / "table.csv"
    table.write_text("id,potassium,potassium_unit,medications\na,4.1,mmol/L,furosemide\nb,4.1,mmol/L,bumetanide\n")
    statement = _raw_statement(sample, "duckdb", "--id-column", "id")
    rows = {r["line"]: r for r in _run("duckdb", statement, table).iter_rows(named=True)}
    assert rows["a"]["unrecognized"] is False and rows["b"]["unrecognized"] is True
    entries = tmp_path / "entries.txt"
    entries.write_text("bumetanide\n")
    statement = _raw_statement(sample, "duckdb", "--id-column", "id", "--medication-entries", str(entries))
    rows = {r["line"]: r for r in _run("duckdb", statement, table).iter_rows(named=True)}
    assert rows["b"]["unrecognized"] is False and rows["b"]["m__classes"] == rows["a"]["m__classes"] != 0


def _timeline(path: Path) -> Path:
    """Panels of a few patients whose earlier panels sit at the windows' edges: at exactly the
    window (counts), just past it (does not), at the same time as the panel (does not), with a
    blank patient, an unreadable or offset time, and a refused cell in an earlier panel."""
    rows = [
        ("a1", "p1", "2026-01-01 00:00:00", "3.0", "60"),
        ("a2", "p1", "2026-01-03 00:00:00", "3.1", "88"),  # exactly 48 h after a1: +28 umol/L (1.47x)
        ("a3", "p1", "2026-01-03 00:00:00", "2.9", "140"),  # same time as a2: a2 is not earlier
        ("b1", "p2", "2026-01-01 00:00:00", "3.0", "60"),
        ("b2", "p2", "2026-01-03 00:00:01", "3.0", "88"),  # 48 h and 1 s: b1 is out of the window
        ("c1", "", "2026-01-01 00:00:00", "3.0", "60"),
        ("c2", "", "2026-01-02 00:00:00", "3.0", "200"),  # no patient: no history
        ("d1", "p4", "yesterday", "3.0", "60"),
        ("d2", "p4", "2026-01-02T00:00:00", "3.0", "200"),
        ("e1", "p5", "2026-01-01 00:00", "abc", "60"),  # refused row: still an earlier panel
        ("e2", "p5", "2026-01-01 12:00", "3.0", "130"),
        ("f1", "p6", "2026-01-01", "2.8", "80"),
        ("f2", "p6", "2026-01-06 08:00:00", "2.7", "170"),  # within 7 days: a 2.1x ratio
    ]
    lines = ["id,subject_id,charttime,potassium,potassium_unit,creatinine,creatinine_unit,age,sex,medications"]
    for rid, patient, time, k, cr in rows:
        lines.append(f"{rid},{patient},{time},{k},mmol/L,{cr},umol/L,70,F,furosemide 40 mg")
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("dialect", ENGINES)
def test_raw_sql_windows_have_the_batch_edges(interpreter, tmp_path, dialect, request):
    joined = _compare(
        interpreter,
        tmp_path,
        _timeline(tmp_path / "t.csv"),
        _dialect(dialect, request),
        ("potassium", "creatinine"),
        _history_mapping(tmp_path),
    )
    fired = {r["id"]: r["findings"] or "" for r in joined.iter_rows(named=True)}
    assert "acute_kidney_injury" in fired["a2"] and "acute_kidney_injury" not in fired["b2"]
    assert "acute_kidney_injury" not in fired["c2"] and "acute_kidney_injury" in fired["f2"]


def _compare_long(
    interpreter, tmp_path: Path, table: Path, mapping: Path, dialect: str, orders: Path | None = None, patients=None
) -> pl.DataFrame:
    """A long table (one row per result) by `interpret sql --raw` and by `interpret batch`,
    panel by panel (the SQL's `line` is the panel key, subject|specimen; the batch's id column
    the specimen); with the orders and patients tables where given (`--medications`,
    `--patients` to the batch)."""
    options: dict = {"mapping_path": mapping, "allow": "subject_id", "id_column": "specimen_id"}
    more, tables = [], {}
    if orders is not None:
        names = pl.read_csv(orders, infer_schema=False)["drug"].drop_nulls().unique().to_list()
        entries = tmp_path / "entries.txt"
        entries.write_text("\n".join(names))
        more += ["--orders-table", "orders", "--medication-entries", str(entries)]
        tables["orders"], options["medications"] = orders, orders
    if patients is not None:
        more += ["--patients-table", "patients"]
        tables["patients"], options["patients"] = patients, patients
    statement = _raw_statement(table, dialect, "--map", str(mapping), "--allow-identifier", "subject_id", *more)
    from_sql = _run(dialect, statement, table, **tables).with_columns(
        pl.col("line").str.split("|").list.get(1).alias("specimen_id")
    )
    run = batch(interpreter, tmp_path, table.read_bytes(), name=table.name, **options)
    assert run.code == 0, run.stderr
    joined = run.out.select("specimen_id", "findings", "error").join(
        from_sql.select("specimen_id", "__fired", pl.col("error").alias("sql_error")),
        on="specimen_id",
        how="left",
        validate="1:1",
    )
    for row in joined.iter_rows(named=True):
        assert (row["error"] is None) == (row["sql_error"] is None), row
        if row["error"] is None:
            wanted = ";".join(sorted(c for c in (row["findings"] or "").split(";") if c))
            assert _codes(interpreter.ruleset, row["__fired"]) == wanted, row
        elif "given twice" in row["error"]:
            assert "duplicate_analyte" in row["sql_error"], row
    return joined


LONG_MAPPING = (
    "long: {panel_key: [subject_id, specimen_id], patient_key: subject_id, analyte: itemid,\n"
    "       value: valuenum, unit: valueuom, time: charttime}\n"
    'analytes: {"50971": potassium, "50960": magnesium, "50983": sodium, "50912": creatinine,\n'
    '           "50893": calcium, "50931": glucose, "50862": albumin}\n'
)


@pytest.mark.skipif(not MIMIC_HOSP.exists(), reason="../shared/data/mimic-iv-demo is not beside this checkout")
@pytest.mark.parametrize("dialect", ENGINES)
def test_raw_sql_reads_the_mimic_hospital_tables_as_the_batch_does(interpreter, tmp_path, dialect, request):
    """labevents (107,727 results), prescriptions (18,087 orders) and patients, as the hospital
    exported them: grouped into 3,284 panels by subject and specimen, labels by itemid, each
    panel's medications the orders active at its time, its age at that time from anchor age and
    year, its history by subject and chart time. Every panel's findings are the batch's, the
    rules that need orders' start times included."""
    mapping = tmp_path / "long.yaml"
    mapping.write_text(
        LONG_MAPPING
        + "medications_file: {patient_key: subject_id, name: drug, start: starttime, stop: stoptime}\n"
        + "patients_file: {patient_key: subject_id, age: anchor_age, age_year: anchor_year, sex: gender}\n"
    )
    tables = {}
    for name in ("labevents", "prescriptions", "patients"):
        tables[name] = tmp_path / f"{name}.csv.gz"
        tables[name].write_bytes((MIMIC_HOSP / f"{name}.csv.gz").read_bytes())
    joined = _compare_long(
        interpreter,
        tmp_path,
        tables["labevents"],
        mapping,
        _dialect(dialect, request),
        tables["prescriptions"],
        tables["patients"],
    )
    assert joined.height == 3284
    fired = joined["findings"].fill_null("")
    for code, at_least in (("acute_kidney_injury", 100), ("reduced_egfr", 1000), ("diuretic_associated_losses", 50)):
        assert fired.str.contains(code).sum() > at_least, code  # the comparison has cases of each kind
    assert fired.str.contains("persistent_hypokalemia_despite_replacement").sum() > 0  # orders' starts


RANGES = "long: {panel_key: [subject_id, specimen_id], patient_key: subject_id, analyte: itemid,\n" + (
    "       value: valuenum, unit: valueuom, time: charttime, low: ref_range_lower, high: ref_range_upper}\n"
)


@pytest.mark.skipif(not MIMIC_HOSP.exists(), reason="../shared/data/mimic-iv-demo is not beside this checkout")
@pytest.mark.parametrize("dialect", ENGINES)
def test_raw_sql_reads_each_results_laboratory_range_as_the_batch_does(interpreter, tmp_path, dialect, request):
    """labevents carries each result's own reference range (ref_range_lower/_upper): with
    `long.low`/`long.high` it decides low and high in both runners alike, and it changes what
    is found (this laboratory's magnesium interval is 1.6-2.6 mg/dL, wider than the default)."""
    mapping = tmp_path / "long.yaml"
    mapping.write_text(RANGES + LONG_MAPPING.split("\n", 2)[2])
    table = tmp_path / "labevents.csv.gz"
    table.write_bytes((MIMIC_HOSP / "labevents.csv.gz").read_bytes())
    joined = _compare_long(interpreter, tmp_path, table, mapping, _dialect(dialect, request))
    assert joined.height == 3284
    with_ranges = joined["findings"].fill_null("").str.contains("hypomagnesemia").sum()
    plain = tmp_path / "plain.yaml"
    plain.write_text(LONG_MAPPING)
    run = batch(interpreter, tmp_path, table.read_bytes(), name=table.name, mapping_path=plain, allow="subject_id")
    assert with_ranges < run.out["findings"].fill_null("").str.contains("hypomagnesemia").sum()


def _hostile_long(path: Path) -> Path:
    """Results that conflict, repeat, are spelled two ways, have labels no one knows, or
    cells and units the validation refuses; over two patients' timelines."""
    rows = [
        ("p1", "s1", "50971", "3.0", "mEq/L", "2026-01-01 00:00"),
        ("p1", "s1", "50971", "3.00", "mmol/L", "2026-01-01 00:00"),  # the same result again
        ("p1", "s1", "50960", "2.0", "mg/dL", "2026-01-01 00:00"),
        ("p1", "s1", "99999", "7", "x", "2026-01-01 00:00"),  # a label no one maps: not used
        ("p1", "s2", "50960", "2.0", "mg/dL", "2026-01-02 00:00"),
        ("p1", "s2", "50960", "2.0", "mmol/L", "2026-01-02 00:00"),  # the same figure, another unit: conflict
        ("p1", "s3", "50912", "0.8", "mg/dL", "2026-01-02 00:00"),
        ("p1", "s4", "50912", "1.4", "mg/dL", "2026-01-03 00:00"),  # creatinine rise from s3
        ("p1", "s4", "50971", "abc", "mEq/L", "2026-01-03 00:00"),
        ("p2", "t1", "50971", "6.9", "mEq/L", "2026-01-01 00:00"),
        ("p2", "t1", "50971", "5.1", "mEq/L", "2026-01-01 00:00"),  # conflicting values
        ("p2", "t2", "50983", "118", "mEq/L", "2026-01-01 06:00"),
        ("p2", "t3", "50983", "132", "mEq/L", "2026-01-01 18:00"),  # sodium +14 in 12 h
        ("p2", "t4", "50983", "140", "furlongs", "2026-01-02 00:00"),
        ("p2", "t5", "99999", "1", "x", "2026-01-02 00:00"),  # no known label: no panel at all
    ]
    lines = ["subject_id,specimen_id,itemid,valuenum,valueuom,charttime"]
    lines += [",".join(r) for r in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("dialect", ENGINES)
def test_raw_sql_groups_a_hostile_long_table_as_the_batch_does(interpreter, tmp_path, dialect, request):
    mapping = tmp_path / "long.yaml"
    mapping.write_text(LONG_MAPPING)
    joined = _compare_long(
        interpreter, tmp_path, _hostile_long(tmp_path / "long.csv"), mapping, _dialect(dialect, request)
    )
    rows = {r["specimen_id"]: r for r in joined.iter_rows(named=True)}
    assert set(rows) == {"s1", "s2", "s3", "s4", "t1", "t2", "t3", "t4"}
    assert rows["s1"]["error"] is None and rows["s2"]["error"] and rows["t1"]["error"]
    assert "rapid_sodium_rise" in (rows["t3"]["findings"] or "")


@pytest.mark.parametrize("dialect", ENGINES)
def test_raw_sql_places_orders_and_ages_in_time_as_the_batch_does(interpreter, tmp_path, dialect, request):
    """Orders started before, at and after a panel, stopped before it, still running (no
    stop), with an unreadable start or a stop before their start (not used); patients with an
    anchor year, without one, and absent: the same medications, ages and findings as the batch."""
    mapping = tmp_path / "long.yaml"
    mapping.write_text(
        LONG_MAPPING
        + "medications_file: {patient_key: subject_id, name: drug, start: starttime, stop: stoptime}\n"
        + "patients_file: {patient_key: subject_id, age: anchor_age, age_year: anchor_year, sex: gender}\n"
    )
    orders = tmp_path / "orders.csv"
    orders.write_text(
        "subject_id,drug,starttime,stoptime\n"
        "p1,Furosemide,2025-12-31 00:00:00,\n"  # running at every panel of p1
        "p1,Omeprazole,2026-01-02 12:00:00,2026-01-04 00:00:00\n"  # from between s2 and s4
        "p1,Digoxin,2026-01-01 00:00:00,2025-12-01 00:00:00\n"  # stop before start: not used
        "p1,Spironolactone,soon,\n"  # unreadable start: not used
        "p2,Potassium Chloride,2026-01-01 03:00:00,2026-01-03 00:00:00\n"  # after t1's low K
        "p2,Lisinopril,2026-01-01 06:00:00,2026-01-01 06:00:00\n"  # starts and stops at t2
    )
    patients = tmp_path / "patients.csv"
    patients.write_text("subject_id,anchor_age,anchor_year,gender\np1,70,2024,F\np2,44,,M\n")
    joined = _compare_long(
        interpreter,
        tmp_path,
        _hostile_long(tmp_path / "long.csv"),
        mapping,
        _dialect(dialect, request),
        orders,
        patients,
    )
    fired = {r["specimen_id"]: r["findings"] or "" for r in joined.iter_rows(named=True)}
    assert "diuretic_associated_losses" in fired["s1"]  # the running furosemide order reached the rules
    refused = {r["specimen_id"] for r in joined.iter_rows(named=True) if r["error"]}
    assert {"t2", "t3"} <= refused  # p2 has an age without its anchor year: refused in both


def test_an_age_year_without_a_panel_time_is_refused_alike_by_both_runners(interpreter, tmp_path):
    """The age in an anchor year can only be moved to a panel's year when panels have a
    time: the mapping is refused when it is read, in the same words for `interpret batch`
    and `interpret sql --raw` (one check, `MappingFile`)."""
    mapping = tmp_path / "long.yaml"
    mapping.write_text(
        "long: {panel_key: [subject, specimen], patient_key: subject, analyte: code, value: value, unit: unit}\n"
        "patients_file: {patient_key: subject, age: anchor_age, age_year: anchor_year, sex: gender}\n"
    )
    (tmp_path / "patients.csv").write_text("subject,anchor_age,anchor_year,gender\np1,60,2024,F\n")
    text = "specimen,subject,code,value,unit\ns1,p1,2160-0,1.0,mg/dL\n"
    words = "patients_file.age_year needs long.time (the age is worked out at each panel's time)"
    run = batch(interpreter, tmp_path, text, mapping_path=mapping, patients=tmp_path / "patients.csv")
    assert run.code == 2 and words in run.stderr
    sample = tmp_path / "long.csv"
    sample.write_text(text)
    options = ("--map", str(mapping), "--allow-identifier", "subject", "--patients-table", "patients")
    code, said = _cli("sql", "--raw", str(sample), *options)
    assert code == 2 and words in said
