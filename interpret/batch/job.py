"""A batch run as one job: shared by `interpret batch` and the web upload."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import polars as pl

from interpret.batch.columns import PanelColumns, ensure_quantities
from interpret.batch.mapping import MappingFile, Plan, load_mapping, make_plan
from interpret.batch.read import (
    INPUT_NOTE,
    ROW,
    BatchInputError,
    CsvSource,
    Prefetch,
    careful_frame,
    frame_chunks,
    is_encoding_error,
    line_count,
    needs_careful_reading,
    open_csv,
    read_chunks,
)
from interpret.batch.run import BatchRun, Stats, sidecar
from interpret.batch.serial import add_serial_columns, has_history, unreadable_times
from interpret.ruleset import Ruleset


def parse_units(options: list[str]) -> dict[str, str]:
    units = {}
    for option in options:
        name, sep, unit = option.partition("=")
        if not sep or not name.strip() or not unit.strip():
            raise BatchInputError(f"--unit {option!r}: write analyte=unit, e.g. potassium=mEq/L")
        units[name.strip()] = unit.strip()
    return units


@dataclass
class BatchResult:
    stats: Stats
    plan: Plan
    source: CsvSource


@dataclass(frozen=True)
class BatchOptions:
    """What a run is asked for besides its input and output: the command's options."""

    fmt: str | None = None
    mapping_path: Path | None = None
    units: tuple[str, ...] = ()
    id_column: str | None = None
    allow: tuple[str, ...] = ()
    medications: Path | None = None
    patients: Path | None = None  # long format: a patients table (age, sex) joined by patient
    summary: Path | None = None
    details: Path | None = None
    progress: Any = None
    prefetch: Prefetch | None = None  # the file's reading, started before the ruleset was loaded
    engine: str = "polars"  # where the facts and rules run (batch/run.ENGINES)
    spark_master: str | None = None  # --engine spark: the cluster's master URL (default local[*])
    severities: bool = False  # a `severities` column (code=severity;...): `interpret rules diff` compares them


def execute(
    rs: Ruleset, input_csv: Path, output: Path, options: BatchOptions = BatchOptions(), encoding: str | None = None
) -> BatchResult:
    """The whole batch run; raises `BatchInputError` for problems with the file as a whole.

    Shared by the command line and the web upload, which differ only in how they report.
    The encoding is sniffed from the first megabyte; should polars meet a byte further on that
    is not UTF-8, the run starts again with the file read as Latin-1 (and says so).
    """
    if output.exists() and not output.is_file():  # a folder, a pipe (/dev/stdout | ...), a device
        raise BatchInputError(f"{output}: not a file; the output is a file, with its .json (ruleset, counts) beside it")
    output = output.resolve()  # /dev/stdout redirected to a file: that file, with its .json beside it
    if not output.parent.is_dir() or not os.access(output.parent, os.W_OK):
        raise BatchInputError(f"{output.parent}: not a folder this run can write to")
    if output.exists() and not os.access(output, os.W_OK):
        raise BatchInputError(f"{output}: a file this run may not replace (read-only)")
    try:
        return _execute(rs, input_csv, output, options, encoding)
    except _RecordsSpanLines:
        note = "quoted fields hold line breaks: the file was read again record by record, so that each row's line is where its record starts"
        return _execute(rs, input_csv, output, options, encoding, note, careful=True)
    except (pl.exceptions.ComputeError, pl.exceptions.SchemaError) as exc:
        if needs_careful_reading(exc):
            note = (
                "rows the fast reader could not split (a stray or unbalanced quote, or many more fields "
                "than the header): the file was read again record by record (slower)"
            )
            return _execute(rs, input_csv, output, options, encoding, note, careful=True)
        if encoding is not None or not is_encoding_error(exc):
            raise
    note = "the file is not UTF-8 past its first megabyte: it was read again, line by line"
    return _execute(rs, input_csv, output, options, "latin-1", note)


def _line_total(source: CsvSource) -> Future[int]:
    """The file's lines: already counted (a gzip file's expansion check), or counted now on a
    thread of its own while the run reads the file."""
    if source.line_total is not None:
        known: Future[int] = Future()
        known.set_result(source.line_total)
        return known
    pool = ThreadPoolExecutor(max_workers=1)
    future = pool.submit(line_count, source.path)
    pool.shutdown(wait=False)
    return future


class _RecordsSpanLines(Exception):
    """The fast read's line numbers are record numbers: some records span lines."""


def _execute(
    rs: Ruleset,
    input_csv: Path,
    output: Path,
    options: BatchOptions,
    encoding: str | None,
    note: str | None = None,
    careful: bool = False,
) -> BatchResult:
    mapping = load_mapping(options.mapping_path)
    source, plan = open_input(
        rs,
        input_csv,
        mapping,
        fmt=options.fmt,
        units=list(options.units),
        id_column=options.id_column,
        allow=list(options.allow),
        encoding=encoding,
        head_only=True,
    )
    free = shutil.disk_usage(output.parent).free
    if free < 2 * source.size:  # the output is about 1.6 times the input, its .json beside it
        source.release()
        raise BatchInputError(
            f"{output.parent}: {free:,} bytes free, and the output of {source.size:,} bytes of input "
            "needs about twice that"
        )
    try:
        wide = None
        if plan.format == "long":
            from interpret.batch.long import long_to_wide

            source, plan, wide = long_to_wide(source, plan, mapping, rs, options.medications, options.patients)
            wide, plan = with_history(rs, plan, source, wide)
        elif careful:
            wide = careful_frame(source)
        if plan.format == "wide" and mapping.history is not None:
            wide, plan = wide_with_history(rs, plan, source, mapping, wide)

        run = BatchRun(rs, plan, source, options.engine, options.spark_master)
        run.severities = options.severities
        # counted beside the run, on its own thread, unless already known: see below
        lines = _line_total(source) if wide is None else None

        def chunks() -> Iterator[pl.DataFrame]:
            if wide is not None:
                return frame_chunks(wide)
            started = options.prefetch.take(source) if options.prefetch else None
            return started if started is not None else read_chunks(source)

        stats = run.run(output, progress=options.progress, chunks=chunks())
        if lines is not None and stats.rows + stats.blank_lines + source.header_line != lines.result():
            # A quoted field holds a line break: the fast reader numbers records, not lines.
            # Read again record by record, so that `line` is the line where each record starts.
            raise _RecordsSpanLines
        if note:
            stats.notes.append(note)
        if hinted := source.hint_note():
            stats.notes.append(hinted)
        if source.redecoded:
            shown = ", ".join(str(n) for n in source.redecoded[:20])
            more = f" and {len(source.redecoded) - 20} more" if len(source.redecoded) > 20 else ""
            stats.notes.append(
                f"{len(source.redecoded)} lines are not UTF-8 and were read as Windows-1252 (cp1252): "
                f"lines {shown}{more}; every other line as UTF-8"
            )
        sidecar(output.with_name(output.name + ".json"), rs, plan, stats, source, input_csv, run.described_columns)
        if options.summary is not None:
            from interpret.batch.summary import write_summary

            write_summary(options.summary, rs, plan, stats, source, input_csv)
        if options.details is not None:
            from interpret.batch.details import write_details
            from interpret.pipeline import Interpreter  # the single-panel engine, only when asked for

            write_details(options.details, Interpreter(rs), output, plan, source, chunks())
    finally:
        source.release()
    return BatchResult(stats, plan, source)


def wide_with_history(
    rs: Ruleset, plan: Plan, source: CsvSource, mapping: MappingFile, wide: pl.DataFrame | None
) -> tuple[pl.DataFrame, Plan]:
    """A wide export with `history:` in its mapping, read whole (unless `wide` is the file
    already read), its rows given their patient's earlier rows as history; the patient and
    time columns count as mapped."""
    spec = mapping.history
    assert spec is not None
    missing = [c for c in (spec.patient_key, spec.time) if c not in source.headers]
    if missing:
        raise BatchInputError(f"history: column(s) {', '.join(map(repr, missing))} not in the file")
    frame = wide if wide is not None else pl.concat(list(read_chunks(source)), how="vertical")
    frame = frame.with_columns(pl.col(spec.patient_key).alias("__patient"), pl.col(spec.time).alias("__time"))
    frame, plan = with_history(rs, plan, source, frame)
    used = (spec.patient_key, spec.time)
    return frame, replace(plan, unmapped=[h for h in plan.unmapped if h not in used])


def with_history(rs: Ruleset, plan: Plan, source: CsvSource, wide: pl.DataFrame) -> tuple[pl.DataFrame, Plan]:
    """Panels with a patient and a time get the conditions across time as columns
    (batch/serial.py), worked out on the whole file before it is cut into chunks: a
    patient's earlier panel may lie in another chunk. The plan then writes the AKI stage."""
    if not has_history(wide) or wide.height == 0:
        return wide, plan
    notes = unreadable_times(wide)
    if notes.null_count() < wide.height:
        given = (
            wide.get_column(INPUT_NOTE)
            if INPUT_NOTE in wide.columns
            else pl.Series([None] * wide.height, dtype=pl.String)
        )
        wide = wide.with_columns(
            pl.concat_str([given, notes], separator="; ", ignore_nulls=True).replace("", None).alias(INPUT_NOTE)
        )
    columns = PanelColumns(rs, plan, source.decimal_comma)
    facts = columns.patient(columns.results(wide))
    facts = columns.medications(facts, plan.roles.get("medications"))
    facts = ensure_quantities(columns.facts(facts))
    found = wide.join(add_serial_columns(rs, facts), on=ROW, how="left", maintain_order="left")
    return found, replace(plan, history=True)


def open_input(
    rs: Ruleset,
    input_csv: Path,
    mapping: MappingFile,
    *,
    fmt: str | None,
    units: list[str],
    id_column: str | None,
    allow: list[str],
    encoding: str | None = None,
    head_only: bool = False,
) -> tuple[CsvSource, Plan]:
    if fmt not in (None, "wide", "long"):
        raise BatchInputError(f"--format {fmt!r}: choose wide or long")
    source = open_csv(input_csv, mapping.delimiter, encoding, head_only)
    try:
        plan = make_plan(source.headers, mapping, rs, parse_units(units), id_column, fmt, allow)
    except BaseException:
        source.release()
        raise
    return source, plan
