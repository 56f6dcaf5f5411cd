"""The `interpret batch` command's work, kept apart from argument parsing."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from interpret.batch.mapping import describe_plan, load_mapping, make_plan
from interpret.batch.read import BatchInputError, open_csv
from interpret.batch.run import BatchRun, sidecar


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
    rs = interpreter.ruleset
    try:
        mapping = load_mapping(mapping_path)
        source = open_csv(input_csv, mapping.delimiter)
        if fmt not in (None, "wide", "long"):
            raise BatchInputError(f"--format {fmt!r}: choose wide or long")
        plan = make_plan(source.headers, mapping, rs, parse_units(units), id_column, fmt, allow)
        if inspect_only:
            print(
                f"{input_csv}: encoding {source.encoding}, delimiter {source.delimiter!r}, {len(source.headers)} columns"
            )
            print(describe_plan(plan, source.headers))
            return 0
        if output is None:
            raise BatchInputError("-o/--output is required (or use --inspect)")
        if plan.format == "long":
            from interpret.batch.long import long_to_wide

            source, plan, chunks = long_to_wide(source, plan, mapping, rs, medications)
        else:
            chunks = None
    except BatchInputError as exc:
        _error(str(exc))
        return 2
    if plan.unmapped:
        _error("unmapped columns (reported, not used): " + ", ".join(plan.unmapped))
    run = BatchRun(rs, plan, source)
    stats = run.run(output, progress=_progress(), chunks=chunks)
    sidecar(output.with_name(output.name + ".json"), rs, plan, stats, source, input_csv)
    if summary is not None:
        from interpret.batch.summary import write_summary

        write_summary(summary, rs, plan, stats, source, input_csv)
    if details is not None:
        from interpret.batch.details import write_details

        write_details(details, interpreter, output, input_csv, plan, source)
    print(stats.line())
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
