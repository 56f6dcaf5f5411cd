"""Broken files never lose a row silently: mutations of a real export (hypothesis).

The base is the first rows of the MIMIC-IV demo's wide join (../shared, as CI has it; a
generated file of the same shape where it is absent). Each example changes a few bytes — a
quote, a delimiter, a line break, a lone CR, a non-UTF-8 byte, a cut — and the run must end
normally with one output row per record: every non-blank line the reader could not have
merged into another record (no quote in the file) is a row, line numbers increase, and every
refused row says why.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import polars as pl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from interpret.batch.job import BatchOptions, execute
from interpret.batch.read import BatchInputError
from tests.conftest import SHARED

WIDE = SHARED / "data/mimic-iv-demo/panels_wide.csv"
GENERATED = (
    "potassium,potassium_unit,magnesium,magnesium_unit,creatinine,creatinine_unit,age,gender,medications\n"
    + "".join(
        f"{3 + i % 20 / 10},mEq/L,{1.5 + i % 9 / 10},mg/dL,{0.6 + i % 7 / 10},mg/dL,{40 + i},F,Furosemide;KCl\n"
        for i in range(30)
    )
)


def base() -> bytes:
    if WIDE.exists():
        lines = WIDE.read_bytes().splitlines(keepends=True)
        return b"".join(lines[:31])
    return GENERATED.encode()


BASE = base()
INSERTS = [b'"', b",", b"\n", b"\r", b"\r\n", b"\xff", b"\xe9", b"\x00", b"=cmd", b";", b"\t", b"  ", b'""', b",,,,,"]


@st.composite
def mutated(draw) -> bytes:
    data = bytearray(BASE)
    header_end = data.index(b"\n") + 1
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["insert", "delete", "duplicate"]))
        at = draw(st.integers(header_end, len(data) - 1))
        if kind == "insert":
            data[at:at] = draw(st.sampled_from(INSERTS))
        elif kind == "delete":
            del data[at : at + draw(st.integers(1, 12))]
        else:
            start = data.rfind(b"\n", 0, at) + 1
            end = data.find(b"\n", at) + 1 or len(data)
            data[end:end] = data[start:end]
    return bytes(data)


@given(mutated())
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
def test_a_mutated_export_keeps_every_row_and_names_every_refusal(interpreter, body):
    with tempfile.TemporaryDirectory() as folder:
        source, output = Path(folder) / "in.csv", Path(folder) / "out.csv"
        source.write_bytes(body)
        try:
            execute(interpreter.ruleset, source, output, BatchOptions())
        except BatchInputError as exc:  # a problem with the file as a whole: said, not a crash
            assert str(exc)
            return
        out = pl.read_csv(output, infer_schema=False)
    lines = [int(n) for n in out["line"].to_list()]
    assert lines == sorted(set(lines)), "each row once, in input order"
    # lines end in LF (or CRLF); a lone CR ends lines only in a file that has no LF at all
    physical = body.split(b"\n") if b"\n" in body else body.split(b"\r")
    assert all(1 < n <= len(physical) for n in lines)
    refused = out.filter(pl.col("error").is_not_null())
    assert all(e.strip() for e in refused["error"].to_list())
    if b'"' not in body:  # no record can span lines: every non-blank data line is a row
        header_at = next(i for i, line in enumerate(physical) if line.strip())
        data = [line for line in physical[header_at + 1 :] if line.replace(b",", b"").strip(b" \t\r")]
        assert out.height == len(data)
