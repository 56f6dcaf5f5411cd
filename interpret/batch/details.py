"""`--details`: the full Interpretation of each output row, as JSON lines.

Each row, from the same chunks the run read, goes through the single-panel engine (the same one as
the API), so the details carry evidence, wording and references. Slower than the batch path:
meant for the rows a data team wants to read, or for audits of modest files.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl

from interpret.batch.columns import censored_not_measured
from interpret.batch.mapping import Plan
from interpret.batch.read import ROW, CsvSource
from interpret.models import to_dict
from interpret.ruleset import Ruleset
from interpret.validate import InputError, read_number


def write_details(
    path: Path, interpreter: Any, output: Path, plan: Plan, source: CsvSource, chunks: Iterator[pl.DataFrame]
) -> None:
    """One JSON line per output row, from the same chunks (and line numbers) as the run."""
    out = pl.read_csv(output, infer_schema=False, columns=["line", "error"])
    errors = dict(zip((int(line) for line in out["line"]), out["error"], strict=True))
    with path.open("w", encoding="utf-8") as f:
        for chunk in chunks:
            for row in chunk.iter_rows(named=True):
                line = int(row[ROW])
                if line not in errors:
                    continue  # a blank line: not a row of the output either
                record: dict[str, Any] = {"line": line}
                if errors[line]:
                    record["error"] = errors[line]
                else:
                    try:
                        panel = panel_from_row(row, plan, source, interpreter.ruleset)
                        record["interpretation"] = to_dict(interpreter.interpret(panel))
                    except InputError as exc:
                        record["error"] = "; ".join(f"{e.location}: {e.message}" for e in exc.errors)
                f.write(json.dumps(record, ensure_ascii=False) + "\n")


def panel_from_row(row: dict[str, Any], plan: Plan, source: CsvSource, rs: Ruleset) -> dict[str, Any]:
    results = []
    hemolysis_in_a_cell = False  # as in the run: the result is not measured, the specimen is haemolysed
    for analyte, header in plan.analyte_columns.items():
        value = (row.get(header) or "").strip()
        hemolysis = rs.meta.specimen.is_hemolysis(value)
        hemolysis_in_a_cell |= hemolysis
        not_measured = censored_not_measured(value, analyte, rs)  # as in the run
        if not value or hemolysis or not_measured:
            continue
        unit = (row.get(plan.unit_columns.get(analyte, ""), "") or "").strip() or plan.fixed_units.get(analyte, "")
        result: dict[str, Any] = {"analyte": analyte, "value": read_number(value, source.decimal_comma), "unit": unit}
        low_h, high_h = plan.range_columns.get(analyte, (None, None))
        bounds = {
            k: read_number(row[h], source.decimal_comma)
            for k, h in (("low", low_h), ("high", high_h))
            if h and (row.get(h) or "").strip()
        }
        if bounds:
            result["reference_range"] = bounds
        results.append(result)
    panel: dict[str, Any] = {"results": results}
    patient = {}
    if "age" in plan.roles and (row.get(plan.roles["age"]) or "").strip():
        patient["age"] = read_number(row[plan.roles["age"]], source.decimal_comma)
    if "sex" in plan.roles and (row.get(plan.roles["sex"]) or "").strip():
        patient["sex"] = row[plan.roles["sex"]].strip()
    if patient:
        panel["patient"] = patient
    if "medications" in plan.roles:
        panel["medications"] = [m.strip() for m in (row.get(plan.roles["medications"]) or "").split(";") if m.strip()]
    if "hemolyzed" in plan.roles or hemolysis_in_a_cell:
        said = rs.meta.specimen.yes_no(row.get(plan.roles["hemolyzed"]) or "") if "hemolyzed" in plan.roles else None
        panel["specimen"] = {"hemolyzed": said is True or hemolysis_in_a_cell}
    return panel
