"""The `interpret batch` command's work, kept apart from argument parsing."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from interpret.batch.mapping import MappingFile, Plan, describe_plan, load_mapping, make_plan
from interpret.batch.read import BatchInputError, CsvSource, open_csv
from interpret.batch.run import BatchRun, Stats, sidecar


def _error(message: str) -> None:
    print(message, file=sys.stderr)


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


def execute(
    interpreter: Any,
    input_csv: Path,
    output: Path,
    *,
    fmt: str | None = None,
    mapping_path: Path | None = None,
    units: list[str] | None = None,
    id_column: str | None = None,
    allow: list[str] | None = None,
    medications: Path | None = None,
    summary: Path | None = None,
    details: Path | None = None,
    progress: Any = None,
) -> BatchResult:
    """The whole batch run; raises `BatchInputError` for problems with the file as a whole.

    Shared by the command line and the web upload, which differ only in how they report.
    """
    rs = interpreter.ruleset
    mapping = load_mapping(mapping_path)
    source, plan = prepare(
        interpreter, input_csv, mapping, fmt=fmt, units=units or [], id_column=id_column, allow=allow or []
    )
    chunks = None
    if plan.format == "long":
        from interpret.batch.long import long_to_wide

        source, plan, chunks = long_to_wide(source, plan, mapping, rs, medications)
    run = BatchRun(rs, plan, source)
    stats = run.run(output, progress=progress, chunks=chunks)
    sidecar(output.with_name(output.name + ".json"), rs, plan, stats, source, input_csv)
    if summary is not None:
        from interpret.batch.summary import write_summary

        write_summary(summary, rs, plan, stats, source, input_csv)
    if details is not None:
        from interpret.batch.details import write_details

        write_details(details, interpreter, output, input_csv, plan, source)
    return BatchResult(stats, plan, source)


def prepare(
    interpreter: Any,
    input_csv: Path,
    mapping: MappingFile,
    *,
    fmt: str | None,
    units: list[str],
    id_column: str | None,
    allow: list[str],
) -> tuple[CsvSource, Plan]:
    if fmt not in (None, "wide", "long"):
        raise BatchInputError(f"--format {fmt!r}: choose wide or long")
    source = open_csv(input_csv, mapping.delimiter)
    plan = make_plan(source.headers, mapping, interpreter.ruleset, parse_units(units), id_column, fmt, allow)
    return source, plan


def run_batch(
    interpreter: Any,
    input_csv: Path,
    output: Path | None,
    *,
    fmt: str | None,
    mapping_path: Path | None,
    units: list[str],
    id_column: str | None,
    allow: list[str],
    medications: Path | None,
    summary: Path | None,
    details: Path | None,
    inspect_only: bool,
) -> int:
    """The command line: exit 0 with the final line on stdout, or 2 with the problem on stderr."""
    try:
        if inspect_only:
            mapping = load_mapping(mapping_path)
            source, plan = prepare(
                interpreter, input_csv, mapping, fmt=fmt, units=units, id_column=id_column, allow=allow
            )
            print(
                f"{input_csv}: encoding {source.encoding}, delimiter {source.delimiter!r}, {len(source.headers)} columns"
            )
            print(describe_plan(plan, source.headers))
            return 0
        if output is None:
            raise BatchInputError("-o/--output is required (or use --inspect)")
        result = execute(
            interpreter,
            input_csv,
            output,
            fmt=fmt,
            mapping_path=mapping_path,
            units=units,
            id_column=id_column,
            allow=allow,
            medications=medications,
            summary=summary,
            details=details,
            progress=_progress(),
        )
    except BatchInputError as exc:
        _error(str(exc))
        return 2
    if result.plan.unmapped:
        _error("unmapped columns (reported, not used): " + ", ".join(result.plan.unmapped))
    print(result.stats.line())
    return 0


def _progress() -> Any:
    if not sys.stderr.isatty():
        return None
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    progress = Progress(SpinnerColumn(), TextColumn("{task.completed:,} rows"), TimeElapsedColumn(), transient=True)
    progress.start()
    task = progress.add_task("batch", total=None)

    def advance(rows: int) -> None:
        progress.advance(task, rows)

    import atexit

    atexit.register(progress.stop)
    return advance
