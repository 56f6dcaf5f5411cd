"""Batch runs as a data team would do them, on awkward files; nothing lost, nothing unsafe."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from interpret.cli import app
from interpret.validate import InputError
from tests.conftest import ROOT, SHARED

MIMIC_WIDE = SHARED / "data/mimic-iv-demo/panels_wide.csv"


OPTIONS = {
    "fmt": "--format",
    "mapping_path": "--map",
    "id_column": "--id-column",
    "medications": "--medications",
    "patients": "--patients",
    "summary": "--summary",
    "details": "--details",
    "units": "--unit",
    "allow": "--allow-identifier",
    "engine": "--engine",
}


class Run:
    """What a user sees: the exit code, the output CSV, standard output and standard error."""

    def __init__(self, code: int, out: pl.DataFrame | None, stdout: str, stderr: str) -> None:
        self.code, self.out, self.stdout, self.stderr = code, out, stdout, stderr

    def __iter__(self):  # `code, out = batch(...)`
        return iter((self.code, self.out))


def batch(interpreter, tmp_path: Path, text: str | bytes, *, name="in.csv", inspect_only=False, **options) -> Run:
    """Runs `interpret batch` as the command line does (typer's runner, same process)."""
    source = tmp_path / name
    source.write_bytes(text if isinstance(text, bytes) else text.encode())
    output = tmp_path / "out.csv"
    args = ["batch", str(source)] + (["--inspect"] if inspect_only else ["-o", str(output)])
    for key, value in options.items():
        for item in value if isinstance(value, list) else [value]:
            if item is not None:
                args += [OPTIONS[key], str(item)]
    result = CliRunner().invoke(app, args)
    read = result.exit_code == 0 and not inspect_only
    frame = pl.read_csv(output, infer_schema=False) if read else None
    return Run(result.exit_code, frame, result.stdout, result.stderr)


def json_lines(path: Path) -> list[dict]:
    """The records of a `--details` file."""
    return [json.loads(line) for line in path.read_text().splitlines()]


def findings(out: pl.DataFrame, i: int) -> set[str]:
    text = out["findings"][i] or ""
    return set(text.split(";")) - {""}


WIDE = """id,potassium,potassium_unit,magnesium,magnesium_unit,creatinine,creatinine_unit,age,sex,medications,hemolyzed
a1,3.0,mmol/L,1.3,mg/dL,88,umol/L,72,F,furosemide 40 mg;Bactrim DS,no
a2,6.6,mEq/L,2.0,mg/dL,1.0,mg/dL,50,M,,yes
a3,4.1,mmol/L,,,,,,,,
"""


def test_wide_rows_in_rows_out_with_findings(interpreter, tmp_path):
    run = batch(interpreter, tmp_path, WIDE, id_column="id")
    code, out = run
    assert code == 0 and out.height == 3
    assert out["id"].to_list() == ["a1", "a2", "a3"] and out["line"].to_list() == ["2", "3", "4"]
    assert {"hypokalemia_with_hypomagnesemia", "diuretic_associated_losses", "egfr_interpretation_caveat"} <= findings(
        out, 0
    )
    assert {"hyperkalemia", "possible_pseudohyperkalemia", "hemolyzed_specimen"} <= findings(out, 1)
    assert out["max_severity"].to_list()[:2] == ["warning", "critical"]
    assert out["egfr_category"][1] == "G1"
    assert "3 rows: 3 interpreted, 0 refused" in run.stdout


def test_sidecar_names_ruleset_and_mapping(interpreter, tmp_path):
    batch(interpreter, tmp_path, WIDE)
    side = json.loads((tmp_path / "out.csv.json").read_text())
    assert side["ruleset"]["sha256"] == interpreter.ruleset.sha256 and side["disclaimer"]
    assert side["mapping"]["potassium"] == "potassium result" and side["counts"]["rows"] == 3


EVERY_COLUMN = (
    "id,patient,taken,potassium,potassium_unit,sodium,sodium_unit,chloride,chloride_unit,bicarbonate,"
    "bicarbonate_unit,glucose,glucose_unit,urea,urea_unit,calcium,calcium_unit,ionized_calcium,"
    "ionized_calcium_unit,creatinine,creatinine_unit,age,sex,medications\n"
    "a,p,2026-01-01 08:00,3.1,mmol/L,140,mmol/L,104,mmol/L,24,mmol/L,5.5,mmol/L,5,mmol/L,2.3,mmol/L,"
    "1.1,mmol/L,80,umol/L,70,F,furosemide\n"
)


@pytest.mark.parametrize("history", [False, True])
def test_the_sidecar_describes_every_output_column_in_order(interpreter, tmp_path, history):
    """A data team reads what each column holds from the `.json` beside it: every column of
    the output, in order, has a description (declared with the column, so a new column
    cannot go undocumented), and the analytes' say their canonical unit."""
    mapping = tmp_path / "map.yaml"
    mapping.write_text("history: {patient_key: patient, time: taken}\n" if history else "{}\n")
    run = batch(interpreter, tmp_path, EVERY_COLUMN, id_column="id", mapping_path=mapping, allow=["patient"])
    assert run.code == 0, run.stderr
    described = json.loads((tmp_path / "out.csv.json").read_text())["columns"]
    assert list(described) == run.out.columns
    assert all(words.strip() for words in described.values())
    assert {"anion_gap_mmol_L", "osmolality_mOsm_kg", "calcium_assessed_mmol_L", "corrected_sodium_mmol_L"} <= set(
        described
    )
    assert ("aki_stage" in described) == history
    assert "in mmol/L" in described["potassium_mmol_L"] and "in umol/L" in described["creatinine_umol_L"]


def test_column_without_unit_is_an_error_before_reading(interpreter, tmp_path):
    run = batch(interpreter, tmp_path, "potassium,sodium,sodium_unit\n3.0,140,mmol/L\n")
    assert run.code == 2 and not (tmp_path / "out.csv").exists()
    assert "column 'potassium' (potassium) has no unit" in run.stderr


def test_unit_option_and_mapping_file(interpreter, tmp_path):
    mapping = tmp_path / "map.yaml"
    mapping.write_text("columns:\n  potassium: 'Potassium (mmol/L)'\n  magnesium: Mg\nunits:\n  magnesium: mg/dL\n")
    text = "Potassium (mmol/L),Mg,Na\n3.1,1.5,130\n"
    code, out = batch(interpreter, tmp_path, text, mapping_path=mapping, units=["potassium=mmol/L", "Na=mEq/L"])
    assert code == 0 and "hypokalemia_with_hypomagnesemia" in findings(out, 0) and "hyponatremia" in findings(out, 0)


def test_inspect_prints_the_plan(interpreter, tmp_path):
    run = batch(interpreter, tmp_path, "K,K_unit,ward,Gender\n4,mmol/L,5B,F\n", inspect_only=True)
    text = run.stdout
    assert run.code == 0 and "K " in text and "-> potassium result" in text and "-> sex" in text
    assert "unmapped (reported, not used): ward" in text


@pytest.mark.parametrize(
    "header", ["patient_name", "MRN", "Date of Birth", "email", "NHS number", "Phone", "Address line 1"]
)
def test_identifier_columns_stop_the_run(interpreter, tmp_path, header):
    text = f"{header},potassium,potassium_unit\nx,4.0,mmol/L\n"
    run = batch(interpreter, tmp_path, text)
    assert run.code == 2 and "looks like a direct identifier" in run.stderr
    code, out = batch(interpreter, tmp_path, text, allow=[header])
    assert code == 0 and header not in out.columns  # allowed, never copied


def test_spreadsheet_formulas_are_neutralised(interpreter, tmp_path):
    text = 'id,potassium,potassium_unit,medications\n"=HYPERLINK(""http://x"")",4.0,mmol/L,"@SUM(1);+cmd"\n'
    code, out = batch(interpreter, tmp_path, text, id_column="id")
    raw = (tmp_path / "out.csv").read_text()
    assert code == 0
    assert out["id"][0].startswith("'=") and out["unrecognized_medications"][0].startswith("'@")
    for line in list(csv.reader(io.StringIO(raw)))[1:]:
        assert not any(cell[:1] in ("=", "+", "@", "\t", "\r") for cell in line)


def test_awkward_semicolon_file_with_decimal_commas_and_odd_cells(interpreter, tmp_path):
    text = (
        "\ufeffpotassium;potassium_unit;sodium;sodium_unit;note\n"
        '3,4;mmol/L;140;mmol/L;"quoted; with delimiter"\n'
        "\n"
        "<2.0;mmol/L;140;mmol/L;censored\n"
        "hemolyzed;mmol/L;140;mmol/L;lab wrote haemolysis\n"
        "abc;mmol/L;140;mmol/L;text\n"
        "4,1;mmol/L;140;mmol/L;x;extra;fields\n"
        "45;mmol/L;140;mmol/L;typo\n"
        "4.2;furlongs;140;mmol/L;bad unit\n"
    )
    code, out = batch(interpreter, tmp_path, text)
    assert code == 0 and out.height == 7  # 8 data lines, one blank
    errors = out["error"].to_list()
    assert errors[0] is None and "hypokalemia" in findings(out, 0)  # 3,4 read as 3.4
    assert "censored value" in errors[1] and "line" in out.columns and out["line"][1] == "4"
    assert errors[2] is None and "hemolyzed_specimen" in findings(out, 2)
    assert "'abc' is not a number" in errors[3]
    assert "more fields than the header" in errors[4]
    assert "plausible range" in errors[5]
    assert "'furlongs' is not a unit for potassium" in errors[6]
    side = json.loads((tmp_path / "out.csv.json").read_text())
    assert side["counts"]["blank_lines_skipped"] == 1


def test_latin1_and_tab_delimited(interpreter, tmp_path, monkeypatch):
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    text = "potassium\tpotassium_unit\tcreatinine\tcreatinine_unit\tcomment\n3.1\tmmol/L\t90\tµmol/L\tMüller's sample\n"
    code, out = batch(interpreter, tmp_path, text.encode("latin-1"))
    assert code == 0 and out["error"][0] is None and float(out["creatinine_umol_L"][0]) == 90
    assert not list(scratch.iterdir())  # the UTF-8 copy of the file is not left behind
    code, _ = batch(interpreter, tmp_path, text.encode("latin-1"), inspect_only=True)
    assert code == 0 and not list(scratch.iterdir())


def test_comma_decimal_in_a_comma_file_is_refused(interpreter, tmp_path):
    code, out = batch(interpreter, tmp_path, 'potassium,potassium_unit\n"3,4",mmol/L\n')
    assert code == 0 and "decimal comma" in out["error"][0]


CELLS = ["", "4.1", "3,2", "<2", ">10", "abc", "hemolyzed", "-1", "45", "1e3", "nan", "inf", " 5.0 ", '"x,y"', "=1+1"]
UNITS = ["", "mmol/L", "mEq/L", "mg/dL", "furlongs"]


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    st.lists(
        st.tuples(
            st.sampled_from(CELLS),
            st.sampled_from(UNITS),
            st.sampled_from(CELLS),
            st.sampled_from(["", "F", "M", "x", "17", "40"]),
            st.integers(0, 2),
        ),
        min_size=1,
        max_size=30,
    ),
    st.sampled_from([",", ";", "\t"]),
)
def test_rows_in_equal_rows_out_on_malformed_files(interpreter, tmp_path_factory, rows, delimiter):
    tmp = tmp_path_factory.mktemp("fuzz")
    lines = [delimiter.join(["potassium", "potassium_unit", "age", "sex"])]
    expected = 0
    for k, unit, age, sex, extra in rows:
        cells = [k, unit, age, sex] + ["x"] * extra
        line = delimiter.join(c if delimiter not in c else '"' + c.replace('"', '""') + '"' for c in cells)
        lines.append(line)
        expected += 0 if not "".join(cells[:4]).strip() and not extra else 1
    code, out = batch(interpreter, tmp, "\n".join(lines) + "\n")
    assert code == 0
    assert out.height == expected
    assert ((out["error"].is_not_null()) | (out["findings"].is_not_null())).all()


def test_summary_page_content(interpreter, tmp_path):
    summary = tmp_path / "summary.html"
    code, _ = batch(interpreter, tmp_path, WIDE, summary=summary)
    html = summary.read_text()
    assert code == 0 and interpreter.ruleset.sha256 in html and "decision support" in html.lower()
    assert "<svg" in html and "Potassium against magnesium" in html
    assert "hypokalemia_with_hypomagnesemia" in html and "Columns and how they were mapped" in html


def test_details_are_one_json_line_per_row(interpreter, tmp_path):
    details = tmp_path / "d.jsonl"
    batch(interpreter, tmp_path, WIDE, details=details)
    records = json_lines(details)
    assert [r["line"] for r in records] == [2, 3, 4]
    codes = {f["code"] for f in records[0]["interpretation"]["findings"]}
    assert "hypokalemia_with_hypomagnesemia" in codes


def test_details_read_haemolysis_as_the_run_does(interpreter, tmp_path):
    """Same words, same haemolysis flag in both (details once had a shorter word list of its own)."""
    text = (
        "potassium,potassium_unit,magnesium,magnesium_unit,hemolyzed\n"
        "6.1,mmol/L,0.8,mmol/L,haemolysis\n"
        "6.1,mmol/L,hemolyzed,mmol/L,no\n"
        "6.1,mmol/L,0.8,mmol/L,no\n"
    )
    details = tmp_path / "d.jsonl"
    code, out = batch(interpreter, tmp_path, text, details=details)
    records = json_lines(details)
    flags = [r["interpretation"]["specimen_hemolyzed"] for r in records]
    assert code == 0 and flags == [True, True, False]
    in_details = [
        "possible_pseudohyperkalemia" in {f["code"] for f in r["interpretation"]["findings"]} for r in records
    ]
    in_run = ["possible_pseudohyperkalemia" in (codes or "") for codes in out["findings"].to_list()]
    assert in_details == in_run == [True, True, False]


def test_every_haemolysis_word_in_a_value_cell_is_read_as_the_ruleset_reads_it(interpreter, tmp_path):
    """Each of the ruleset's haemolysis words, in capitals and padded, in a magnesium cell: read as
    not measured with the specimen flagged haemolysed, exactly where `is_hemolysis` says so (the
    batch once kept its own lower-casing of the word list)."""
    specimen = interpreter.ruleset.meta.specimen
    words = [f"  {w.upper()} " for w in specimen.hemolyzed_words] + ["HAEMOLYSED?", "non-haemolysed"]
    rows = "".join(f"6.1,mmol/L,{w},mg/dL\n" for w in words)
    run = batch(interpreter, tmp_path, "potassium,potassium_unit,magnesium,magnesium_unit\n" + rows)
    assert run.code == 0
    for i, word in enumerate(words):
        read_as_hemolysis = specimen.is_hemolysis(word)
        assert read_as_hemolysis == (i < len(specimen.hemolyzed_words))
        if read_as_hemolysis:  # not measured, the specimen haemolysed: pseudohyperkalaemia is considered
            assert run.out["error"][i] is None and run.out["magnesium_mmol_L"][i] is None
            assert "possible_pseudohyperkalemia" in findings(run.out, i), word
        else:  # a word that is no number: the row is refused, in validate's words
            assert "magnesium" in (run.out["error"][i] or ""), word


LONG = """specimen,subject,code,value,unit,time
s1,p1,2823-3,3.0,mmol/L,2026-01-02 08:00
s1,p1,19123-9,1.3,mg/dL,2026-01-02 08:00
s1,p1,718-7,12.0,g/dL,2026-01-02 08:00
s2,p1,2823-3,4.0,mmol/L,2026-02-01 08:00
s2,p1,2823-3,4.4,mmol/L,2026-02-01 08:00
s3,p2,Na,128,mmol/L,2026-01-05 09:00
"""
ORDERS = """subject,drug,start,stop
p1,Furosemide,2026-01-01 00:00,2026-01-10 00:00
p2,Sertraline,2025-12-01 00:00,2026-03-01 00:00
p1,Omeprazole,2026-03-01 00:00,2026-04-01 00:00
"""


def test_long_format_panels_and_medications_by_time(interpreter, tmp_path):
    mapping = tmp_path / "long.yaml"
    mapping.write_text(
        "long: {panel_key: [subject, specimen], patient_key: subject, analyte: code, value: value, unit: unit, time: time}\n"
        "medications_file: {patient_key: subject, name: drug, start: start, stop: stop}\n"
    )
    meds = tmp_path / "orders.csv"
    meds.write_text(ORDERS)
    code, out = batch(interpreter, tmp_path, LONG, mapping_path=mapping, medications=meds, id_column="specimen")
    assert code == 0 and out.height == 3
    assert {"hypokalemia_with_hypomagnesemia", "diuretic_associated_losses"} <= findings(out, 0)
    assert "given twice with different values" in out["error"][1]
    assert "drug_associated_hyponatremia" in findings(out, 2)
    side = json.loads((tmp_path / "out.csv.json").read_text())
    assert any("'718-7' (1)" in note for note in side["notes"])


def test_details_follow_the_runs_rows_in_long_format(interpreter, tmp_path):
    mapping = tmp_path / "long.yaml"
    mapping.write_text("long: {panel_key: [subject, specimen], analyte: code, value: value, unit: unit}\n")
    details = tmp_path / "d.jsonl"
    code, out = batch(interpreter, tmp_path, LONG, mapping_path=mapping, details=details)
    records = json_lines(details)
    assert code == 0 and [r["line"] for r in records] == [int(x) for x in out["line"]]
    first = {f["code"] for f in records[0]["interpretation"]["findings"]}
    assert "hypokalemia_with_hypomagnesemia" in first
    assert "given twice with different values" in records[1]["error"]


def test_details_skip_blank_lines_like_the_run(interpreter, tmp_path):
    details = tmp_path / "d.jsonl"
    code, _ = batch(interpreter, tmp_path, "potassium,potassium_unit\n3.0,mmol/L\n\n6.6,mmol/L\n", details=details)
    records = json_lines(details)
    assert code == 0 and [r["line"] for r in records] == [2, 4]
    assert [r["interpretation"]["results"][0]["value"] for r in records] == [3.0, 6.6]


def test_cli_end_to_end(tmp_path):
    source = tmp_path / "in.csv"
    source.write_text(WIDE)
    out = subprocess.run(
        [sys.executable, "-m", "interpret.cli", "batch", str(source), "-o", str(tmp_path / "o.csv")],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    # a 3-row run is too short to have a speed ("63 rows/s" was silly): the line ends with the counts
    assert out.returncode == 0 and out.stdout.strip().endswith("info 0") and "rows/s" not in out.stdout
    assert "3 rows: 3 interpreted, 0 refused" in out.stdout


@pytest.mark.skipif(not MIMIC_WIDE.exists(), reason="../shared/data/mimic-iv-demo is not beside this checkout")
def test_mimic_demo_figures(interpreter, tmp_path):
    """The real export's figures as its README computes them independently."""
    code, out = batch(interpreter, tmp_path, MIMIC_WIDE.read_bytes(), id_column="specimen_id")
    assert code == 0 and out.height == 3011 and out["error"].null_count() == 3011
    counts = json.loads((tmp_path / "out.csv.json").read_text())["counts"]["findings"]
    total = {code: sum(v.values()) for code, v in counts.items()}
    assert total["hypokalemia"] == 264  # K < 3.5 mEq/L
    assert total["hypomagnesemia"] == 176  # Mg < 1.7 mg/dL (the mg/dL interval applies)
    assert total["hyperkalemia"] == 252  # K > 5.0
    assert total["hyponatremia"] == 760  # Na < 135
    assert total["hypokalemia_with_hypomagnesemia"] == 23
    assert total["hypokalemia_magnesium_unmeasured"] == 36
    assert total["hemolyzed_specimen"] == 104
    assert total["possible_pseudohyperkalemia"] == 26


def test_a_row_with_only_overflow_text_is_refused_not_skipped(interpreter, tmp_path):
    """Found by the fuzz test: empty named fields plus an extra field is a malformed row, not a blank line."""
    code, out = batch(interpreter, tmp_path, "potassium,potassium_unit,age,sex\n,,,,x\n")
    assert code == 0 and out.height == 1
    assert "more fields than the header" in out["error"][0]


def test_latin1_byte_past_the_first_megabyte_restarts_as_latin1(interpreter, tmp_path):
    """The encoding is sniffed from the head only; polars refuses a later non-UTF-8 byte and the
    run starts again as Latin-1: nothing lost, nothing garbled, and the sidecar says so."""
    rows = ["3.9,mmol/L,furosemide"] * 60_000  # well over a megabyte of ASCII
    text = "potassium,potassium_unit,medications\n" + "\n".join(rows) + "\n3.1,mmol/L,Müller-Tabletten\n"
    code, out = batch(interpreter, tmp_path, text.encode("latin-1"))
    assert code == 0 and out.height == 60_001
    assert out["unrecognized_medications"][-1] == "Müller-Tabletten"
    side = json.loads((tmp_path / "out.csv.json").read_text())
    assert side["input"]["encoding"] == "mixed" and side["input"]["redecoded_lines"] == [60_002]
    assert any("read again, line by line" in note for note in side["notes"])
    assert any("lines 60002" in note for note in side["notes"])


def test_lookup_answers_right_when_its_memory_is_cleared(monkeypatch):
    """Distinct texts past the limit clear the memory; answers must not change (nor fail)."""
    from interpret.batch.columns import Lookup

    monkeypatch.setattr(Lookup, "LIMIT", 5)
    calls = []
    lookup = Lookup(lambda t: calls.append(t) or t.upper() or None, pl.String)
    for chunk in (["a", "b", "a", ""], ["c", "d", "e", "f", "a"], ["g"] * 3):
        out = lookup(pl.Series("x", chunk))
        assert out.to_list() == [t.upper() or None for t in chunk]
    assert len(lookup.known) <= 5 + 1
    assert calls.count("a") == 2  # remembered within the limit, resolved again after a clear


@given(st.lists(st.sampled_from(["F", "m", "female", " M ", "", "x", "?", "f", "u", "w", "q", "7"]), max_size=60))
@settings(max_examples=200, deadline=None)
def test_lookup_maps_every_cell_to_its_own_texts_answer(cells):
    """One spelling, a handful or many, after other chunks or not: each cell gets the answer
    for its own text (unknown texts none), in its own row."""
    from interpret.batch.columns import Lookup

    sexes = pl.Enum(["female", "male"])
    answer = {"f": "female", "female": "female", "m": "male", "M": "male"}
    for chunks_before in ([], [[str(i) for i in range(20)]]):  # the second: the lookup has seen many
        lookup = Lookup(lambda t: answer.get(t.strip()), sexes)
        for earlier in chunks_before:
            lookup(pl.Series("sex", earlier))
        out = lookup(pl.Series("sex", cells, dtype=pl.String))
        assert out.dtype == sexes and out.len() == len(cells)
        assert out.to_list() == [answer.get(c.strip()) for c in cells]


def test_patient_cells_that_are_not_accepted_refuse_the_row_with_the_text_as_written(interpreter, tmp_path):
    """As the single-panel path refuses sex 'z', so does the batch; the message quotes the cell
    (a past version flagged such rows but lost the message and interpreted them anyway)."""
    text = (
        "potassium,potassium_unit,age,sex,hemolyzed\n"
        "3.9,mmol/L,50,z,no\n"
        "3.9,mmol/L,50,F,maybe\n"
        "3.9,mmol/L, 17 ,F,no\n"
        "3.9,mmol/L,50,F,Yes\n"
    )
    code, out = batch(interpreter, tmp_path, text)
    assert code == 0
    errors = out["error"].to_list()
    assert errors[0] == "sex: 'z' is not accepted; use female, male, other or unknown"
    assert errors[1] == "hemolyzed: 'maybe' is not yes/no"
    assert errors[2] == "age: 17 is outside 18-120: only adult reference intervals are available"
    assert errors[3] is None
    with pytest.raises(InputError) as refused:  # the single-panel path, for comparison
        interpreter.evaluate(
            {"results": [{"analyte": "potassium", "value": 3.9, "unit": "mmol/L"}], "patient": {"sex": "z"}}
        )
    assert "not accepted" in str(refused.value.errors)


def test_output_must_be_a_file(tmp_path):
    """Not a folder, nor /dev/stdout: the ruleset hash and counts go to a .json beside it."""
    (tmp_path / "in.csv").write_text("potassium,potassium_unit\n3.9,mmol/L\n")
    (tmp_path / "folder").mkdir()
    result = CliRunner().invoke(app, ["batch", str(tmp_path / "in.csv"), "-o", str(tmp_path / "folder")])
    assert result.exit_code == 2 and "not a file" in result.stderr
    assert list((tmp_path / "folder").iterdir()) == []


def test_the_command_line_reads_the_file_once_starting_before_the_ruleset_loads(interpreter, tmp_path, monkeypatch):
    """The prefetched reader is the one the run uses (no second read); a mapping file, which
    may change the delimiter, gets a plain read."""
    import interpret.batch.job as job
    import interpret.batch.read as read

    started: list[str] = []
    real = read.read_chunks

    def spy(source, *args, **kwargs):
        started.append(source.delimiter)
        return real(source, *args, **kwargs)

    monkeypatch.setattr(read, "read_chunks", spy)
    monkeypatch.setattr(job, "read_chunks", spy)
    code, out = batch(interpreter, tmp_path, WIDE)
    assert code == 0 and out.height == 3 and started == [","]
    assert "hypokalemia_with_hypomagnesemia" in findings(out, 0)

    started.clear()
    mapping = tmp_path / "map.yaml"
    mapping.write_text("delimiter: ';'\n")
    code, out = batch(interpreter, tmp_path, WIDE.replace(",", ";"), mapping_path=mapping)
    assert code == 0 and out.height == 3 and started == [";"]


def test_prefetched_chunks_are_handed_over_once_and_only_for_the_same_reading(tmp_path):
    from interpret.batch.read import Prefetch, open_csv

    path = tmp_path / "in.csv"
    path.write_text(WIDE)
    early = Prefetch.start(path)
    assert early is not None
    other = open_csv(path, delimiter=";")
    assert early.take(other) is None  # read differently: the run reads it itself
    early = Prefetch.start(path)
    chunks = early.take(open_csv(path, head_only=True))
    assert chunks is not None and sum(c.height for c in chunks) == 3
    assert early.take(open_csv(path, head_only=True)) is None  # once only (--details reads again)


def test_no_prefetch_for_a_latin1_or_missing_file(tmp_path):
    """A Latin-1 file is read from a UTF-8 copy the run makes; a missing one is the run's error to report."""
    from interpret.batch.read import Prefetch

    latin = tmp_path / "latin.csv"
    latin.write_bytes("potassium,medications\n3.9,Müller\n".encode("latin-1"))
    temp_files = set(Path(tempfile.gettempdir()).glob("interpret-utf8-*"))
    assert Prefetch.start(latin) is None
    assert set(Path(tempfile.gettempdir()).glob("interpret-utf8-*")) == temp_files
    assert Prefetch.start(tmp_path / "missing.csv") is None


def test_a_correction_exactly_on_a_limit_is_decided_as_on_it_in_the_batch_too(interpreter, tmp_path):
    """The batch computes the correction with the same formula (derive.Ops): 2.35 mmol/L with
    albumin 30 g/L is exactly 2.55, the interval's inclusive top: normal, as in the single panel."""
    text = "calcium,calcium_unit,albumin,albumin_unit\n2.35,mmol/L,30,g/L\n1.87,mmol/L,26,g/L\n9.8,mg/dL,3.5,g/dL\n"
    code, out = batch(interpreter, tmp_path, text)
    assert code == 0 and out["calcium_assessed_status"].to_list() == ["normal", "normal", "normal"]
    assert out["calcium_assessed_mmol_L"].to_list() == ["2.55", "2.15", "2.545"]  # 10.2 mg/dL
    for i in range(3):
        assert not findings(out, i) & {"hypercalcemia", "hypocalcemia"}


def test_a_censored_egfr_is_read_as_not_measured_and_the_row_interpreted(interpreter, tmp_path):
    """Laboratories report eGFR above a cut-off as ">60": refusing such rows would drop most of
    an export. The rest of the row is interpreted; the note says why eGFR was not used. A
    censored potassium ("<2.0") still refuses its row: it is itself a critical finding."""
    text = (
        "potassium,potassium_unit,egfr,egfr_unit,age,sex\n"
        "3.1,mmol/L,>60,mL/min/1.73m2,70,F\n"
        "3.1,mmol/L, > 90 ,mL/min/1.73m2,70,F\n"
        "<2.0,mmol/L,45,mL/min/1.73m2,70,F\n"
    )
    details = tmp_path / "details.jsonl"
    code, out = batch(interpreter, tmp_path, text, details=details)
    assert code == 0 and out.height == 3
    assert out["error"][:2].to_list() == [None, None] and "hypokalemia" in findings(out, 0)
    assert "'>60' is a bound, not a result" in out["notes"][0] and "'> 90' is a bound" in out["notes"][1]
    assert out["egfr"][:2].to_list() == [None, None] and "reduced_egfr" in out["not_assessed"][0].split(";")
    assert "'<2.0' is a bound (a censored value)" in out["error"][2]
    notes = json.loads((tmp_path / "out.csv.json").read_text())["notes"]
    assert "2 rows: egfr: a value is a bound, not a result (censored), read as not measured (the notes column)" in notes
    records = json_lines(details)
    codes = [{f["code"] for f in r["interpretation"]["findings"]} for r in records[:2]]
    assert codes == [findings(out, 0), findings(out, 1)]  # --details reads the cell as the run does


def test_the_output_takes_its_name_only_when_complete(interpreter, tmp_path, monkeypatch):
    """A run that fails part-way leaves no half-written file under the output's name, and
    nothing hidden beside it; a complete run replaces an earlier output, created as any
    file would be (mode 0666 less the umask)."""
    import os

    from interpret.batch import run as batch_run

    text = "potassium,potassium_unit\n3.1,mmol/L\n4.0,mmol/L\n"
    (tmp_path / "out.csv").write_text("an earlier run's output\n")
    original = batch_run.OutputFile.write

    def fails_after_writing(self, *args):
        original(self, *args)
        raise OSError("No space left on device")

    monkeypatch.setattr(batch_run.OutputFile, "write", fails_after_writing)
    failed = batch(interpreter, tmp_path, text)
    assert failed.code != 0
    # the earlier output is as it was, nothing half-written, nothing hidden left
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv", "out.csv"]
    assert (tmp_path / "out.csv").read_text() == "an earlier run's output\n"

    monkeypatch.setattr(batch_run.OutputFile, "write", original)
    done = batch(interpreter, tmp_path, text)
    assert done.code == 0 and done.out["potassium_status"].to_list() == ["low", "normal"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv", "out.csv", "out.csv.json"]
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "out.csv").stat().st_mode & 0o777 == 0o666 & ~umask


def test_chunks_written_out_of_turn_land_in_input_order(tmp_path):
    """Workers finish in any order; each chunk's rows are written in its turn, under one header."""
    import threading

    from interpret.batch.run import OutputFile

    frames = [pl.DataFrame({"line": [2 * n + 2, 2 * n + 3]}) for n in range(4)]
    with OutputFile(tmp_path / "out.csv") as out:
        writers = [threading.Thread(target=out.write, args=(frames[n], n)) for n in (3, 1, 2, 0)]
        for w in writers:
            w.start()
        for w in writers:
            w.join(timeout=10)
    assert (tmp_path / "out.csv").read_text().split() == ["line", *(str(i) for i in range(2, 10))]


def test_a_failed_chunk_releases_the_chunks_waiting_for_their_turn(tmp_path):
    """Chunk 1 waits for chunk 0; when chunk 0 fails, chunk 1 stops waiting (no hung run)."""
    import threading

    from interpret.batch.run import OutputFile

    errors = []

    def write_second(out):
        try:
            out.write(pl.DataFrame({"line": [3]}), 1)
        except RuntimeError as exc:
            errors.append(str(exc))

    with pytest.raises(ValueError), OutputFile(tmp_path / "out.csv") as out:
        waiting = threading.Thread(target=write_second, args=(out,))
        waiting.start()
        out.abandon()  # what a worker does when processing chunk 0 fails
        waiting.join(timeout=10)
        assert not waiting.is_alive()
        raise ValueError("chunk 0 failed")
    assert errors == ["the run stopped at an earlier chunk"]
    assert list(tmp_path.iterdir()) == []


def test_many_chunks_give_every_row_once_in_order(interpreter, tmp_path, monkeypatch):
    """A file read in many small chunks, two processed at once: every row once, in input order."""
    from interpret.batch import read

    monkeypatch.setattr(read.read_chunks, "__defaults__", (7,))
    rows = [f"{3 + (i % 30) / 10:.1f},mmol/L,{40 + i % 50}" for i in range(100)]
    code, out = batch(interpreter, tmp_path, "potassium,potassium_unit,age\n" + "\n".join(rows) + "\n")
    assert code == 0
    assert out["line"].to_list() == [str(i) for i in range(2, 102)]
    assert out["potassium_mmol_L"].to_list() == [str(float(r.split(",")[0])) for r in rows]


@pytest.mark.parametrize(
    ("heights", "expected"),
    [
        ([200, 200, 200, 200, 200], [200, 200, 200, 200, 100, 100]),  # the last would run alone
        ([200, 200, 200, 200], [200, 200, 200, 200]),  # it runs beside the one before
        ([200, 200, 200], [200, 200, 100, 100]),
        ([200, 200, 30], [200, 200, 30]),  # too small to be worth halving
        ([200], [200]),
        ([], []),
    ],
)
def test_the_last_chunk_is_halved_when_it_would_run_alone(heights, expected):
    """Two chunks are processed at once; halving a lone last chunk keeps both cores busy
    at the end. Every row is kept, in order."""
    from interpret.batch.run import _last_halved

    start, chunks = 0, []
    for h in heights:
        chunks.append(pl.DataFrame({"line": list(range(start, start + h))}))
        start += h
    out = list(_last_halved(iter(chunks), smallest=50))
    assert [c.height for c in out] == expected
    assert [x for c in out for x in c["line"]] == list(range(sum(heights)))


def test_an_output_the_run_may_not_replace_is_refused_before_any_row(interpreter, tmp_path, monkeypatch):
    """A read-only earlier output: said at once, and left as it was (root bypasses file modes,
    so the permission is simulated)."""
    import os

    from interpret.batch import job

    output = tmp_path / "out.csv"
    output.write_text("keep me\n")
    real_access = os.access

    def access(path, mode, *args, **kwargs):
        return False if Path(path) == output and mode == os.W_OK else real_access(path, mode, *args, **kwargs)

    monkeypatch.setattr(job.os, "access", access)
    run = batch(interpreter, tmp_path, "potassium,potassium_unit\n3.1,mmol/L\n")
    assert run.code == 2 and "may not replace (read-only)" in run.stderr
    assert output.read_text() == "keep me\n"


def test_an_earlier_output_that_cannot_be_moved_fails_the_run_cleanly(interpreter, tmp_path, monkeypatch):
    """If the earlier file cannot be replaced (another owner's file in a sticky folder), the run
    says why, leaves it as it was, and nothing of its own behind."""
    import os

    output = tmp_path / "out.csv"
    output.write_text("not mine\n")
    real_rename = os.rename

    def rename(src, dst, *args, **kwargs):
        if Path(src) == output:
            raise PermissionError(13, "Operation not permitted", str(src))
        return real_rename(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "rename", rename)
    run = batch(interpreter, tmp_path, "potassium,potassium_unit\n3.1,mmol/L\n")
    assert run.code != 0
    assert output.read_text() == "not mine\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv", "out.csv"]


def test_a_killed_run_keeps_the_earlier_output_and_the_next_run_removes_its_leftovers(tmp_path):
    """SIGTERM: the hidden output and the decompressed copy are removed, the earlier output
    kept (it was gone in 5 of 6 kills); a SIGKILLed run's hidden file goes at the next run."""
    import gzip
    import os
    import signal
    import time

    rows = "\n".join(f"{3 + (i % 30) / 10},mmol/L,furosemide" for i in range(600_000))
    source = tmp_path / "big.csv.gz"
    source.write_bytes(gzip.compress(("potassium,potassium_unit,medications\n" + rows + "\n").encode(), 1))
    output = tmp_path / "out.csv"
    output.write_text("earlier\n")
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    env = {**os.environ, "TMPDIR": str(scratch)}
    command = [sys.executable, "-m", "interpret.cli", "batch", str(source), "-o", str(output)]
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not any(p.name.startswith(".out.csv.") for p in tmp_path.iterdir()):
        time.sleep(0.02)
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=60)
    assert process.returncode != 0
    assert output.read_text() == "earlier\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.csv.gz", "out.csv", "tmp"]
    assert list(scratch.iterdir()) == []
    # a leftover of a process that no longer exists (as after SIGKILL) is removed by the next run
    dead = tmp_path / ".out.csv.999999999-abcd.tmp"
    dead.write_text("half")
    small = tmp_path / "small.csv"
    small.write_text("potassium,potassium_unit\n3.1,mmol/L\n")
    subprocess.run(
        [sys.executable, "-m", "interpret.cli", "batch", str(small), "-o", str(output)],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
    )
    assert not dead.exists()


@pytest.fixture
def own_tempdir(tmp_path, monkeypatch):
    """The run's temporary copies go here, so a test can see that none is left behind."""
    folder = tmp_path / "tempdir"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def test_a_gzip_compressed_export_is_read_as_the_plain_file(interpreter, tmp_path, own_tempdir):
    """Exports are shipped compressed (MIMIC-IV's labevents.csv.gz): same rows, same results,
    the sidecar says how the file came, and the decompressed copy is deleted."""
    import gzip

    text = "potassium,potassium_unit,magnesium,magnesium_unit,medications\n3.0,mmol/L,0.5,mmol/L,Lasix\n4.2,mmol/L,,,\n"
    plain = batch(interpreter, tmp_path, text)
    compressed = batch(interpreter, tmp_path, gzip.compress(text.encode()), name="in.csv.gz")
    assert compressed.code == 0 and compressed.out.equals(plain.out)
    assert json.loads((tmp_path / "out.csv.json").read_text())["input"]["compression"] == "gzip"
    assert list(own_tempdir.iterdir()) == []


def test_a_gzip_compressed_latin1_long_export_with_gzip_orders(interpreter, tmp_path, own_tempdir):
    """Long format, both files compressed, the results file in Latin-1: as if they were plain."""
    import gzip

    mapping = tmp_path / "long.yaml"
    mapping.write_text(
        "long: {panel_key: [subject, specimen], patient_key: subject, analyte: code, value: value, unit: unit, time: time}\n"
        "medications_file: {patient_key: subject, name: drug, start: start, stop: stop}\n"
    )
    meds = tmp_path / "orders.csv.gz"
    meds.write_bytes(gzip.compress(ORDERS.encode()))
    results = LONG.replace("s3,p2,Na", "s3,p2,Natrium (Sérum)")  # a Latin-1 byte; mapped below
    mapping.write_text(mapping.read_text() + "analytes: {'Natrium (Sérum)': sodium}\n")
    code, out = batch(
        interpreter,
        tmp_path,
        gzip.compress(results.encode("latin-1")),
        name="results.csv.gz",
        mapping_path=mapping,
        medications=meds,
        id_column="specimen",
    )
    assert code == 0 and out.height == 3
    assert {"hypokalemia_with_hypomagnesemia", "diuretic_associated_losses"} <= findings(out, 0)
    assert "drug_associated_hyponatremia" in findings(out, 2)
    side = json.loads((tmp_path / "out.csv.json").read_text())["input"]
    assert (side["compression"], side["encoding"]) == ("gzip", "mixed")
    assert list(own_tempdir.iterdir()) == []


def test_a_damaged_gzip_file_is_refused_with_its_name(interpreter, tmp_path, own_tempdir):
    import gzip

    whole = gzip.compress(b"potassium,potassium_unit\n" + b"3.1,mmol/L\n" * 10_000)
    run = batch(interpreter, tmp_path, whole[: len(whole) // 2], name="cut.csv.gz")
    assert run.code == 2 and "cut.csv.gz: not a readable gzip file" in run.stderr
    assert list(own_tempdir.iterdir()) == []


PATIENTS = """subject,anchor_age,anchor_year,gender
p1,60,2024,F
"""


def _long_mapping(tmp_path, extra=""):
    mapping = tmp_path / "long.yaml"
    mapping.write_text(
        "long: {panel_key: [subject, specimen], patient_key: subject, analyte: code, value: value, unit: unit, time: time}\n"
        + extra
    )
    return mapping


def test_long_format_takes_age_and_sex_from_a_patients_table(interpreter, tmp_path):
    """MIMIC-IV keeps age and sex in `patients` (age in an anchor year): with them, eGFR is
    computed at each panel's own age; a patient missing from the table is said so."""
    mapping = _long_mapping(
        tmp_path, "patients_file: {patient_key: subject, age: anchor_age, age_year: anchor_year, sex: gender}\n"
    )
    (tmp_path / "patients.csv").write_text(PATIENTS)
    text = "specimen,subject,code,value,unit,time\ns1,p1,2160-0,1.0,mg/dL,2026-01-02 08:00\ns2,p2,2160-0,1.0,mg/dL,2026-01-02\n"
    code, out = batch(interpreter, tmp_path, text, mapping_path=mapping, patients=tmp_path / "patients.csv")
    assert code == 0 and out.height == 2
    # age 60 in 2024 is 62 in 2026: CKD-EPI 2021, female, creatinine 1.0 mg/dL, age 62
    from interpret import derive

    assert float(out["egfr"][0]) == round(derive.ckd_epi_2021(1.0, 62, True), 1)
    assert out["egfr"][1] is None and "egfr_not_computable" in findings(out, 1)
    notes = json.loads((tmp_path / "out.csv.json").read_text())["notes"]
    assert any("1 panels' patients are not in patients.csv" in n for n in notes)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("", "--patients needs `patients_file:`"),
        ("columns: {age: age}\npatients_file: {patient_key: subject, age: anchor_age}\n", "age: named both"),
        ("patients_file: {patient_key: subject, age: years}\n", "column 'years' (patients_file) is not in the file"),
    ],
)
def test_a_patients_table_that_cannot_be_used_is_refused(interpreter, tmp_path, extra, message):
    mapping = _long_mapping(tmp_path, extra)
    (tmp_path / "patients.csv").write_text(PATIENTS)
    text = "specimen,subject,code,value,unit,time,age\ns1,p1,2160-0,1.0,mg/dL,2026-01-02,70\n"
    run = batch(interpreter, tmp_path, text, mapping_path=mapping, patients=tmp_path / "patients.csv")
    assert run.code == 2 and message in run.stderr


MIMIC_HOSP = SHARED / "data/mimic-iv-demo/hosp"


def mimic_long(interpreter, tmp_path: Path, analytes_and_more: str, long_extra: str = "", **options) -> Run:
    """`interpret batch` on the demo's labevents.csv.gz as README's long mapping reads it
    (panel, patient, time; prescriptions as orders), with `analytes_and_more` of the mapping
    and `long_extra` in its `long:` section (", low: ref_range_lower")."""
    mapping = tmp_path / "mimic.yaml"
    mapping.write_text(
        "long: {panel_key: [subject_id, specimen_id], patient_key: subject_id, analyte: itemid,\n"
        f"       value: valuenum, unit: valueuom, time: charttime{long_extra}}}\n"
        "medications_file: {patient_key: subject_id, name: drug, start: starttime, stop: stoptime}\n"
        + analytes_and_more
    )
    return batch(
        interpreter,
        tmp_path,
        (MIMIC_HOSP / "labevents.csv.gz").read_bytes(),
        name="labevents.csv.gz",
        mapping_path=mapping,
        medications=MIMIC_HOSP / "prescriptions.csv.gz",
        id_column="specimen_id",
        allow=["subject_id"],
        **options,
    )


@pytest.mark.skipif(not MIMIC_HOSP.exists(), reason="../shared/data/mimic-iv-demo is not beside this checkout")
def test_mimic_demo_long_export_agrees_with_the_wide_join(interpreter, tmp_path):
    """labevents + prescriptions + patients, straight from the .gz files, give every specimen
    of the wide join (README: built from the same tables) the same eGFR, and the README's own
    count of K < 3.5."""
    code, long = mimic_long(
        interpreter,
        tmp_path,
        'analytes: {"50971": potassium, "50960": magnesium, "50983": sodium, "50912": creatinine,\n'
        '           "50893": calcium, "50931": glucose, "50862": albumin}\n'
        "patients_file: {patient_key: subject_id, age: anchor_age, age_year: anchor_year, sex: gender}\n",
        patients=MIMIC_HOSP / "patients.csv.gz",
    )
    assert code == 0
    counts = json.loads((tmp_path / "out.csv.json").read_text())["counts"]["findings"]
    assert sum(counts["hypokalemia"].values()) == 264  # K < 3.5 mEq/L, as the README counts it
    code, wide = batch(interpreter, tmp_path, MIMIC_WIDE.read_bytes(), id_column="specimen_id")
    # only --id-column is copied: the specimen id, not the panel key joined with the subject id
    assert "panel" not in long.columns and not long["specimen_id"].str.contains("|", literal=True).any()
    by_specimen = long
    joined = wide.select("specimen_id", "egfr").join(
        by_specimen.select("specimen_id", pl.col("egfr").alias("egfr_long")), on="specimen_id", how="left"
    )
    assert joined.height == 3011 and joined["egfr_long"].is_not_null().sum() > 2800  # 2,907 have creatinine
    assert joined.filter(pl.col("egfr").eq_missing(pl.col("egfr_long")).not_()).height == 0


def test_an_age_that_cannot_be_shifted_to_the_panels_time_refuses_that_panel(interpreter, tmp_path):
    """An unusable anchor year (or panel time) is said in the panel's error, never guessed."""
    mapping = _long_mapping(
        tmp_path, "patients_file: {patient_key: subject, age: anchor_age, age_year: anchor_year, sex: gender}\n"
    )
    (tmp_path / "patients.csv").write_text(PATIENTS + "p2,70,n/a,M\np3,sixty,2024,M\n")
    text = (
        "specimen,subject,code,value,unit,time\n"
        "s1,p1,2823-3,4.0,mmol/L,2026-01-02\n"
        "s2,p2,2823-3,4.0,mmol/L,2026-01-02\n"
        "s3,p3,2823-3,4.0,mmol/L,2026-01-02\n"
    )
    code, out = batch(interpreter, tmp_path, text, mapping_path=mapping, patients=tmp_path / "patients.csv")
    assert code == 0 and out.height == 3
    assert out["error"][0] is None
    assert "age at the panel's time cannot be worked out (age_year n/a" in out["error"][1]
    assert "'sixty' is not a number" in out["error"][2]


def test_one_cp1252_byte_does_not_garble_every_utf8_line(interpreter, tmp_path):
    """30,001 rows with valid UTF-8 µmol/L and one Windows-1252 line: every row interpreted,
    the one line re-decoded (its € kept), and the sidecar names it."""
    lines = ["creatinine,creatinine_unit,age,sex,medications"]
    lines += ["90,µmol/L,60,female,furosemide"] * 30_000
    body = ("\n".join(lines) + "\n").encode("utf-8") + "90,µmol/L,60,female,Preis 5 €\n".encode("cp1252")
    code, out = batch(interpreter, tmp_path, body)
    assert code == 0 and out.height == 30_001
    assert out["error"].null_count() == 30_001, out.filter(out["error"].is_not_null())["error"][0]
    assert out["unrecognized_medications"][-1] == "Preis 5 €"
    side = json.loads((tmp_path / "out.csv.json").read_text())
    assert side["input"]["redecoded_lines"] == [30_002]


def test_cr_only_line_endings_are_read(interpreter, tmp_path):
    """Old Mac OS / some Excel exports end lines in a lone CR: polars saw 0 rows."""
    code, out = batch(interpreter, tmp_path, b"potassium,potassium_unit\r3.1,mmol/L\r4.0,mmol/L\r")
    assert code == 0 and out.height == 2 and out["line"].to_list() == ["2", "3"]
    assert out["potassium_status"].to_list() == ["low", "normal"]


def test_blank_lines_before_the_header_are_skipped_and_lines_still_counted(interpreter, tmp_path):
    code, out = batch(interpreter, tmp_path, "\n\npotassium,potassium_unit\n3.1,mmol/L\n4.0,mmol/L\n")
    assert code == 0 and out.height == 2 and out["error"].null_count() == 2
    assert out["line"].to_list() == ["4", "5"]


def test_an_unbalanced_or_stray_quote_refuses_its_row_and_the_rest_is_read(interpreter, tmp_path):
    """It crashed the run with a polars traceback that carried every following row."""
    text = (
        "potassium,potassium_unit,medications\n"
        "3.1,mmol/L,furosemide\n"
        '3.2,mmol/L,"KCl 20\n'
        "3.3,mmol/L,lasix\n"
        '3.4,mmol/L,"KCl" 20\n'
        '3.5,mmol/L,"multi\nline note"\n'
        "3.6,mmol/L,x\n"
    )
    code, out = batch(interpreter, tmp_path, text)
    assert code == 0 and out.height == 6
    assert out["line"].to_list() == ["2", "3", "4", "5", "6", "8"]  # where each record starts
    errors = out["error"].to_list()
    assert "line 3" in errors[1] and "refused" in errors[1] and "lasix" not in errors[1]
    assert "line 5" in errors[3] and "refused" in errors[3]
    assert errors[0] is None and errors[2] is None and errors[4] is None and errors[5] is None
    assert out["potassium_mmol_L"].to_list() == ["3.1", None, "3.3", None, "3.5", "3.6"]
    side = json.loads((tmp_path / "out.csv.json").read_text())
    assert any("stray or unbalanced quote" in note for note in side["notes"])


def test_a_stray_quote_in_a_web_upload_is_not_a_server_error(interpreter):
    from fastapi.testclient import TestClient

    from interpret.web.app import create_app

    client = TestClient(create_app(interpreter), raise_server_exceptions=False)
    body = 'potassium,potassium_unit\n3.1,mmol/L\n"3.2,mmol/L\n3.3,mmol/L\n'
    response = client.post("/batch", files={"file": ("lab.csv", body, "text/csv")})
    assert response.status_code == 200


def test_extra_cells_are_never_dropped_silently(interpreter, tmp_path):
    """`…,,,LOST` lost its last cell: extra cells past the spare columns were truncated."""
    text = "potassium,potassium_unit\n3.1,mmol/L,,,,,,LOST\n3.2,mmol/L,\n3.3,mmol/L,,,LOST\n3.4,mmol/L\n"
    code, out = batch(interpreter, tmp_path, text)
    assert code == 0 and out.height == 4
    errors = out["error"].to_list()
    assert "more fields than the header" in errors[0] and "more fields than the header" in errors[2]
    assert errors[1] is None and errors[3] is None  # a trailing empty cell is an export habit, not data


@pytest.mark.parametrize(
    "header",
    [
        "PatientName",
        "FirstName",
        "LastName",
        "DateOfBirth",
        "MedicalRecordNumber",
        "NHSNumber",
        "MRN1",
        "D.O.B.",
        "birth_dt",
        "pt_name",
        "Tel",
        "UR number",
        "Medicare number",
        "ＭＲＮ",
        "Surname",
    ],
)
def test_identifier_headers_are_caught_however_written(interpreter, tmp_path, header):
    """22 of 47 common identifier headers got through (rules/identifiers.yaml now)."""
    text = f"{header},potassium,potassium_unit\nx,3.1,mmol/L\n"
    source = tmp_path / "in.csv"
    source.write_text(text, encoding="utf-8")
    from interpret.batch.job import BatchOptions, execute
    from interpret.batch.read import BatchInputError

    with pytest.raises(BatchInputError, match="direct identifier"):
        execute(interpreter.ruleset, source, tmp_path / "o.csv", BatchOptions())


def test_ordinary_headers_are_not_taken_for_identifiers(interpreter, tmp_path):
    text = "specimen_id,subject_id,charttime,telemetry,dobutamine_dose,potassium,potassium_unit\n1,2,3,4,5,3.1,mmol/L\n"
    code, out = batch(interpreter, tmp_path, text)
    assert code == 0 and out.height == 1


def test_a_formula_header_and_full_width_formula_cells_are_neutralised(interpreter, tmp_path):
    header = "=cmd|' /C calc'!A0"
    text = f'"{header}",potassium,potassium_unit\n＝1+1,3.1,mmol/L\n@SUM(A1),3.2,mmol/L\n'
    (tmp_path / "in.csv").write_text(text, encoding="utf-8")
    from interpret.batch.job import BatchOptions, execute

    execute(interpreter.ruleset, tmp_path / "in.csv", tmp_path / "o.csv", BatchOptions(id_column=header))
    lines = (tmp_path / "o.csv").read_text(encoding="utf-8").splitlines()
    first = lines[0].split(",")[1]
    assert not first.lstrip('"').startswith("="), lines[0]
    assert lines[1].split(",")[1].startswith("'＝") and lines[2].split(",")[1].startswith("'@")


def test_long_format_duplicates_are_compared_in_canonical_units(interpreter, tmp_path):
    """2.0 mg/dL and 2.0 mmol/L of Mg are a conflict (the first won, and read normal); 3.0
    and 3.00 of K are the same result (they were refused as a conflict)."""
    text = (
        "specimen,subject,code,value,unit,time\n"
        "s1,p1,19123-9,2.0,mg/dL,2026-01-02 08:00\n"
        "s1,p1,19123-9,2.0,mmol/L,2026-01-02 08:00\n"
        "s2,p1,2823-3,3.0,mmol/L,2026-01-03 08:00\n"
        "s2,p1,2823-3,3.00,mEq/L,2026-01-03 08:00\n"
    )
    mapping = tmp_path / "map.yaml"
    mapping.write_text("long: {panel_key: [specimen], analyte: code, value: value, unit: unit, time: time}\n")
    code, out = batch(interpreter, tmp_path, text, mapping_path=mapping)
    assert code == 0 and out.height == 2
    assert "magnesium is given twice with different values (first at line 2: 2.0 mg/dL)" in out["error"][0]
    assert out["error"][1] is None and out["potassium_status"][1] == "low"


def test_orders_with_an_empty_stop_are_running_and_unplaceable_ones_are_said(interpreter, tmp_path):
    """An order with no stop yet was never active (K low on furosemide read as 'no diuretic');
    orders with an unreadable or reversed date were dropped without a word."""
    results = "specimen,subject,code,value,unit,time\ns1,p1,2823-3,3.0,mmol/L,2026-01-02 08:00\ns2,p2,2823-3,3.1,mmol/L,2026-01-02 08:00\n"
    orders = (
        "subject,drug,start,stop\n"
        "p1,Furosemide,2026-01-01 00:00,\n"
        "p2,Hydrochlorothiazide,2026-01-01 00:00,2025-12-01 00:00\n"
        "p2,Omeprazole,yesterday,2026-02-01 00:00\n"
    )
    (tmp_path / "orders.csv").write_text(orders)
    mapping = tmp_path / "map.yaml"
    mapping.write_text(
        "long: {panel_key: [specimen], patient_key: subject, analyte: code, value: value, unit: unit, time: time}\n"
        "medications_file: {patient_key: subject, name: drug, start: start, stop: stop}\n"
    )
    code, out = batch(interpreter, tmp_path, results, mapping_path=mapping, medications=tmp_path / "orders.csv")
    assert code == 0 and out.height == 2
    assert "diuretic_associated_losses" in out["findings"][0]
    assert "2 medication orders of this patient" in out["notes"][1]
    side = json.loads((tmp_path / "out.csv.json").read_text())
    assert any("orders.csv: 2 medication orders" in n and "lines 3, 4" in n for n in side["notes"])


def test_line_is_where_the_record_starts_when_quoted_fields_hold_newlines(interpreter, tmp_path):
    text = 'potassium,potassium_unit,medications\n3.1,mmol/L,"furosemide\n40 mg daily"\n3.2,mmol/L,x\n'
    code, out = batch(interpreter, tmp_path, text)
    assert code == 0 and out["line"].to_list() == ["2", "4"]
    assert out["potassium_mmol_L"].to_list() == ["3.1", "3.2"]


SERIAL_LONG = """subject,specimen,code,value,unit,time
p1,s1,2160-0,80,umol/L,2026-01-08 08:00
p1,s2,2160-0,107,umol/L,2026-01-09 08:00
p2,s3,2951-2,118,mmol/L,2026-01-09 08:00
p2,s4,2951-2,131,mmol/L,2026-01-10 04:00
p3,s5,2160-0,107,umol/L,2026-01-09 08:00
p1,s6,2160-0,100,umol/L,2026-01-12 08:00
"""


def test_long_format_panels_of_a_patient_are_each_others_history(interpreter, tmp_path):
    """p1: 80 -> 107 umol/L in 24 h (a rise of 27, AKI); p2: Na 118 -> 131 in 20 h (rapid
    rise); p3's 107 has no earlier panel: not assessed. Rows stay in input order, one per panel."""
    mapping = tmp_path / "long.yaml"
    mapping.write_text(
        "long: {panel_key: [subject, specimen], patient_key: subject, analyte: code, value: value, unit: unit, time: time}\n"
    )
    code, out = batch(interpreter, tmp_path, SERIAL_LONG, mapping_path=mapping, id_column="specimen")
    assert code == 0 and out["specimen"].to_list() == ["s1", "s2", "s3", "s4", "s5", "s6"]
    assert "acute_kidney_injury" in findings(out, 1) and "acute_kidney_injury" not in findings(out, 0)
    # the stage and the baseline used, where it fires only
    assert out["aki_stage"].to_list() == [None, "1", None, None, None, None]
    assert out["aki_baseline_creatinine_umol_L"][1] == "80.0"
    assert "rapid_sodium_rise" in findings(out, 3)
    assert "acute_kidney_injury" in out["not_assessed"][4].split(";")  # p3: no earlier creatinine
    # s6: 1.25 x the 7-day baseline (false) but nothing inside the 48 h rise window (unknown):
    # not fired, and listed as not assessed, as the single-panel path says
    assert "acute_kidney_injury" not in findings(out, 5) and "acute_kidney_injury" in out["not_assessed"][5]


def test_without_a_patient_key_the_rules_across_time_are_not_assessed(interpreter, tmp_path):
    mapping = tmp_path / "long.yaml"
    mapping.write_text("long: {panel_key: [subject, specimen], analyte: code, value: value, unit: unit, time: time}\n")
    code, out = batch(interpreter, tmp_path, SERIAL_LONG, mapping_path=mapping)
    assert code == 0 and not any("acute_kidney_injury" in findings(out, i) for i in range(out.height))
    assert all("acute_kidney_injury" in na.split(";") for na in out["not_assessed"])


@pytest.mark.skipif(not MIMIC_HOSP.exists(), reason="../shared/data/mimic-iv-demo is not beside this checkout")
def test_mimic_demo_serial_counts_agree_with_an_independent_query(interpreter, tmp_path):
    """Each patient's panels are history of the later ones. An independent polars query over
    labevents (every earlier creatinine and sodium of the same subject, KDIGO and the sodium
    limits written out here) finds the same specimens: AKI 479 specimens of 51 patients (47
    without the panels exactly on 1.5 x, such as 0.2 -> 0.3 mg/dL, that a float comparison
    misses), a rapid sodium rise 24, a rapid fall 15; with the prescriptions, potassium still
    low after replacement was started 69."""
    code, out = mimic_long(
        interpreter, tmp_path, 'analytes: {"50971": potassium, "50983": sodium, "50912": creatinine}\n'
    )
    assert code == 0

    def fired(code: str) -> set[str]:
        return set(out.filter(pl.col("findings").str.split(";").list.contains(code))["specimen_id"])

    lab = pl.read_csv(MIMIC_HOSP / "labevents.csv.gz", infer_schema=False)

    def pairs(itemid: str) -> pl.DataFrame:
        one = (
            lab.filter(pl.col("itemid") == itemid)
            .select(
                "subject_id", "specimen_id", pl.col("charttime").str.to_datetime(), pl.col("valuenum").cast(pl.Float64)
            )
            .drop_nulls()
            .unique(["subject_id", "specimen_id"], keep="first")
        )
        both = one.join(one, on="subject_id", suffix="_e").filter(pl.col("charttime_e") < pl.col("charttime"))
        return both.with_columns(((pl.col("charttime") - pl.col("charttime_e")).dt.total_seconds() / 3600).alias("h"))

    cr, na, eps = pairs("50912"), pairs("50983"), 1e-9
    aki = cr.filter(
        ((pl.col("h") <= 48) & (pl.col("valuenum") - pl.col("valuenum_e") >= 0.3 - eps))
        | ((pl.col("h") <= 168) & (pl.col("valuenum") >= 1.5 * pl.col("valuenum_e") - eps))
    )
    assert fired("acute_kidney_injury") == set(aki["specimen_id"]) and len(set(aki["specimen_id"])) == 479
    assert aki["subject_id"].n_unique() == 51
    low_before = set(na.filter((pl.col("h") <= 48) & (pl.col("valuenum_e") < 130))["specimen_id"])
    fast = na.filter(
        ((pl.col("h") <= 24) & (pl.col("valuenum") - pl.col("valuenum_e") > 10))
        | ((pl.col("h") <= 48) & (pl.col("valuenum") - pl.col("valuenum_e") > 18))
    )
    assert fired("rapid_sodium_rise") == set(fast["specimen_id"]) & low_before
    assert len(fired("rapid_sodium_rise")) == 24
    fall = na.filter(
        (pl.col("h") <= 48) & (pl.col("valuenum_e") - pl.col("valuenum") >= 10) & (pl.col("valuenum") < 135)
    )
    assert fired("rapid_sodium_fall") == set(fall["specimen_id"]) and len(fired("rapid_sodium_fall")) == 15

    # K < 3.5 now, an earlier K < 3.5 within 72 h, and a potassium-supplement order active now
    # that started after the earliest such earlier K and at least 4 h ago (the drug names
    # classed by the catalogue; the windows written out here)
    k = pairs("50971").filter((pl.col("valuenum") < 3.5) & (pl.col("h") <= 72) & (pl.col("valuenum_e") < 3.5))
    first = k.group_by("subject_id", "specimen_id", "charttime").agg(pl.col("h").max().alias("first"))
    rx = pl.read_csv(MIMIC_HOSP / "prescriptions.csv.gz", infer_schema=False)
    catalogue = interpreter.ruleset.medications
    supplements = [
        d for d in rx["drug"].drop_nulls().unique() if "potassium_supplement" in catalogue.match(d.strip()).classes
    ]
    orders = rx.filter(pl.col("drug").is_in(supplements)).select(
        "subject_id",
        pl.col("starttime").str.to_datetime(strict=False).alias("start"),
        pl.col("stoptime").str.to_datetime(strict=False).alias("stop"),
    )
    orders = orders.filter(
        pl.col("start").is_not_null() & (pl.col("stop").is_null() | (pl.col("stop") >= pl.col("start")))
    )
    active = (pl.col("start") <= pl.col("charttime")) & (
        pl.col("stop").is_null() | (pl.col("charttime") <= pl.col("stop"))
    )
    started = (
        first.join(orders, on="subject_id")
        .filter(active)
        .with_columns(((pl.col("charttime") - pl.col("start")).dt.total_seconds() / 3600).alias("hs"))
        .filter((pl.col("hs") >= 4) & (pl.col("hs") <= pl.col("first")))
    )
    assert fired("persistent_hypokalemia_despite_replacement") == set(started["specimen_id"])
    assert len(fired("persistent_hypokalemia_despite_replacement")) == 69


def test_wide_format_rows_of_a_patient_are_each_others_history(interpreter, tmp_path):
    """`history: {patient_key, time}` in the mapping: the same as the long format, times with
    offsets read as instants, an unreadable time said in the row's notes."""
    text = (
        "patient,taken,creatinine,creatinine_unit\n"
        "p1,2026-01-08T10:00:00+02:00,80,umol/L\n"  # 08:00 Z
        "p1,2026-01-09 08:00,107,umol/L\n"  # 24 h later: a rise of 27
        "p2,yesterday,107,umol/L\n"
    )
    mapping = tmp_path / "wide.yaml"
    mapping.write_text("history: {patient_key: patient, time: taken}\n")
    code, out = batch(interpreter, tmp_path, text, mapping_path=mapping)
    assert code == 0 and out.height == 3
    assert "acute_kidney_injury" in findings(out, 1) and out["aki_stage"][1] == "1"
    assert "time yesterday could not be read" in out["notes"][2]
    assert "acute_kidney_injury" in out["not_assessed"][2].split(";")


def test_what_is_a_number_is_decided_once(interpreter, tmp_path):
    """A cell is a number in the batch exactly when it is one for a single panel
    (`validate.read_number`): Python's float() would also take "1_000" or Arabic-Indic digits,
    a polars cast neither; both paths now refuse them, and read a decimal comma alike."""
    from interpret.validate import read_number

    cells = ["3,4", " 3.4 ", "+3.4", "3.", "1_000", "٣.٤", "3,4,5", "3.4.5", "0x10", "inf", "1e0"]
    rows = "".join(f"{c};mmol/L\n" for c in cells)
    run = batch(interpreter, tmp_path, "potassium;potassium_unit\n" + rows)
    assert run.code == 0
    for cell, error, value in zip(cells, run.out["error"], run.out["potassium_mmol_L"], strict=True):
        read = read_number(cell, decimal_comma=True)
        if isinstance(read, float):
            assert error is None and float(value) == read, cell
        else:
            assert error is not None and "not a number" in error, (cell, error)


def test_a_spreadsheets_delimiter_hint_line_is_read_as_the_delimiter(interpreter, tmp_path):
    """Exports meant for Excel may start with `sep=;` (with a BOM and CRLF line ends, and
    decimal commas): that line gives the delimiter, the header is the next one, line numbers
    stay the file's, and the run says so."""
    text = "\ufeffsep=;\r\npotassium;potassium_unit;age;sex\r\n3,1;mmol/L;70;F\r\n\r\n5,9;mmol/L;70;F\r\n"
    run = batch(interpreter, tmp_path, text)
    assert run.code == 0, run.stderr
    assert run.out["line"].to_list() == ["3", "5"] and run.out["potassium_mmol_L"].to_list() == ["3.1", "5.9"]
    side = json.loads((tmp_path / "out.csv.json").read_text())
    assert side["input"]["delimiter"] == ";"
    assert any("line 1, 'sep=;', is a spreadsheet's delimiter hint" in n for n in side["notes"])


@pytest.mark.skipif(not MIMIC_HOSP.exists(), reason="../shared/data/mimic-iv-demo is not beside this checkout")
def test_a_long_exports_own_reference_ranges_decide_low_and_high(interpreter, tmp_path):
    """labevents gives each result its laboratory's range (ref_range_lower/_upper). Mapped as
    `long.low`/`long.high`, it decides the status: this laboratory's magnesium interval is
    1.6-2.6 mg/dL, so every magnesium of exactly 1.6 mg/dL is normal by it, and low by the
    default interval (1.7-2.2 mg/dL) without it."""
    mg_16 = round(1.6 / 24.305 * 10, 4)  # 1.6 mg/dL in mmol/L, as the output rounds it
    statuses = {}
    for ranges in (True, False):
        extra = ", low: ref_range_lower, high: ref_range_upper" if ranges else ""
        run = mimic_long(interpreter, tmp_path, 'analytes: {"50960": magnesium, "50971": potassium}\n', extra)
        assert run.code == 0, run.stderr
        at_16 = run.out.filter(pl.col("magnesium_mmol_L").cast(pl.Float64) == mg_16)
        statuses[ranges] = set(at_16["magnesium_status"].to_list())
        assert at_16.height > 10
    assert statuses == {True: {"normal"}, False: {"low"}}


@pytest.mark.skipif(not MIMIC_HOSP.exists(), reason="../shared/data/mimic-iv-demo is not beside this checkout")
def test_haemolysis_in_the_laboratorys_comments_flags_the_specimen(interpreter, tmp_path):
    """MIMIC-IV writes haemolysis in `comments`, on any test of the specimen ("HEMOLYSIS
    FALSELY ELEVATES K..", "Slightly Hemolyzed specimen." on LDH). With `long.comment` every
    specimen the wide join marks haemolysed from its comments is flagged (all but the one it
    marks from the H-index alone), each with the line that says so, and a high potassium in
    one is possible pseudohyperkalaemia."""
    analytes = 'analytes: {"50971": potassium, "50960": magnesium, "50983": sodium, "50912": creatinine}\n'
    run = mimic_long(interpreter, tmp_path, analytes, ", comment: comments")
    assert run.code == 0, run.stderr
    flagged = run.out.filter(pl.col("findings").fill_null("").str.contains("hemolyzed_specimen"))
    wide = pl.read_csv(MIMIC_WIDE, infer_schema=False)
    marked = set(wide.filter(pl.col("hemolysis") == "yes")["specimen_id"].to_list())
    assert marked - set(flagged["specimen_id"].to_list()) == {"10999899"}  # H-index 449, comment redacted
    assert flagged["notes"].str.contains("the laboratory's comment on line").all()
    assert run.out["findings"].fill_null("").str.contains("possible_pseudohyperkalemia").sum() > 10


def test_a_comment_that_denies_haemolysis_does_not_flag_the_specimen(interpreter, tmp_path):
    mapping = tmp_path / "long.yaml"
    mapping.write_text("long: {panel_key: [specimen], analyte: code, value: value, unit: unit, comment: note}\n")
    text = (
        "specimen,code,value,unit,note\n"
        "s1,2823-3,6.1,mmol/L,VERIFIED.  NOT HEMOLYZED.\n"
        "s2,2823-3,6.1,mmol/L,\n"
        "s2,LDH,400,U/L,SPECIMEN SLIGHTLY HEMOLYZED..\n"  # another test's comment, same specimen
        "s3,2823-3,6.1,mmol/L,QNS TO VERIFY HEMOLYSIS.\n"
    )
    run = batch(interpreter, tmp_path, text, mapping_path=mapping, id_column="specimen")
    assert run.code == 0, run.stderr
    by_specimen = {r["specimen"]: r for r in run.out.iter_rows(named=True)}
    assert "hemolyzed_specimen" in by_specimen["s2"]["findings"] and "line 4" in by_specimen["s2"]["notes"]
    assert "hemolyzed_specimen" not in (by_specimen["s1"]["findings"] or "")
    assert "hemolyzed_specimen" not in (by_specimen["s3"]["findings"] or "")


@pytest.mark.parametrize("first", ["naive", "offset"])
def test_a_time_with_an_offset_is_read_whatever_the_rows_above_it(interpreter, tmp_path, first):
    """Each time cell is read by the ISO formats themselves, never by a format inferred from
    the column's first value: a time with an offset (or Z, or a fraction of a second) below
    one without it was unreadable, and the creatinine rise between them went unassessed."""
    rows = {
        "naive": "p1,2026-01-08 08:00:00.250,80,umol/L\n",
        "offset": "p1,2026-01-09T10:00:00+02:00,107,umol/L\n",  # 24 h later
    }
    other = "offset" if first == "naive" else "naive"
    text = "patient,taken,creatinine,creatinine_unit\n" + rows[first] + rows[other]
    text += "p2,2026-01-08T08:00:00.5Z,80,umol/L\np2,2026-01-09 08:00,107,umol/L\n"
    mapping = tmp_path / "wide.yaml"
    mapping.write_text("history: {patient_key: patient, time: taken}\n")
    run = batch(interpreter, tmp_path, text, mapping_path=mapping, allow="patient")
    assert run.code == 0, run.stderr
    assert run.out["notes"].is_null().all(), run.out["notes"].to_list()  # every time was read
    later = {"naive": 1, "offset": 0}[first]  # the row of 2026-01-09 for p1
    assert "acute_kidney_injury" in findings(run.out, later) and "acute_kidney_injury" in findings(run.out, 3)
