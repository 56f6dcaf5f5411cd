"""The batch (polars) path and the single-panel engine agree, row by row (fhir-py style parity).

>= 10,000 generated panels: every analyte and unit, values at and around every threshold,
missing results, medications, haemolysis, laboratory ranges, and refusals. Both paths must
refuse the same rows and, for the others, fire the same codes at the same severities.
"""

from __future__ import annotations

import csv
import random

import polars as pl
import pytest

from interpret.batch.mapping import MappingFile, make_plan
from interpret.batch.read import open_csv, read_chunks
from interpret.batch.run import BatchRun
from interpret.validate import InputError
from tests.strategies import EDGES, MEDICATIONS, RANGES

N = 10_000
ANALYTES = list(RANGES)


def generated_panel(rng: random.Random) -> dict:
    results = []
    for analyte in rng.sample(ANALYTES, rng.randint(1, len(ANALYTES))):
        if analyte in EDGES and rng.random() < 0.35:
            value, unit = rng.choice(EDGES[analyte])
            value = round(value + rng.choice([0, 0, 0.01, -0.01]), 3)
        else:
            unit, low, high = rng.choice(RANGES[analyte])
            value = round(rng.uniform(low, high), rng.choice([0, 1, 2]))
        result = {"analyte": analyte, "value": value, "unit": unit}
        if rng.random() < 0.05 and analyte != "egfr":
            result["reference_range"] = {
                "low": round(value * rng.uniform(0.8, 1.1), 2),
                "high": round(value * rng.uniform(1.1, 1.6), 2),
            }
        results.append(result)
    panel = {"results": results}
    patient = {}
    if rng.random() < 0.85:
        patient["age"] = rng.choice([rng.randint(18, 99), rng.randint(18, 99), 17, 121])
    if rng.random() < 0.85:
        patient["sex"] = rng.choice(["female", "male", "female", "male", "other", "F", "m", "z"])  # z: refused
    if patient:
        panel["patient"] = patient
    if rng.random() < 0.8:
        panel["medications"] = rng.sample(MEDICATIONS, rng.randint(0, 5))
    if rng.random() < 0.5:
        panel["specimen"] = {"hemolyzed": rng.random() < 0.2}
    return panel


def to_row(panel: dict) -> dict[str, str]:
    row: dict[str, str] = {}
    for r in panel["results"]:
        row[r["analyte"]] = repr(r["value"])
        row[f"{r['analyte']}_unit"] = r["unit"]
        if "reference_range" in r:
            row[f"{r['analyte']}_low"] = repr(r["reference_range"]["low"])
            row[f"{r['analyte']}_high"] = repr(r["reference_range"]["high"])
    patient = panel.get("patient", {})
    row["age"] = str(patient.get("age", ""))
    row["sex"] = patient.get("sex", "")
    row["medications"] = ";".join(panel["medications"]) if "medications" in panel else ""
    row["meds_given"] = "yes" if "medications" in panel else "no"
    hemolyzed = panel.get("specimen", {}).get("hemolyzed")
    row["hemolyzed"] = "" if hemolyzed is None else ("yes" if hemolyzed else "no")
    return row


@pytest.fixture(scope="module")
def both_paths(interpreter, tmp_path_factory):
    rng = random.Random(20261123)
    panels = [generated_panel(rng) for _ in range(N)]
    rows = [to_row(p) for p in panels]
    headers = [f"{a}{s}" for a in ANALYTES for s in ("", "_unit", "_low", "_high")] + [
        "age",
        "sex",
        "medications",
        "meds_given",
        "hemolyzed",
    ]
    path = tmp_path_factory.mktemp("parity") / "panels.csv"
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=headers)
        writer.writeheader()
        writer.writerows(rows)
    source = open_csv(path)
    plan = make_plan(source.headers, MappingFile(), interpreter.ruleset, {}, None, None, [])
    run = BatchRun(interpreter.ruleset, plan, source)
    frame = pl.concat([run.evaluate(chunk, severities=True)[0] for chunk in read_chunks(source, chunk_rows=3000)])
    return panels, frame


def single(interpreter, panel: dict) -> dict | None:
    try:
        _, _, outcomes = interpreter.evaluate(panel)
    except InputError:
        return None
    return {o.rule.code: o.severity for o in outcomes if o.fired}


def batch(frame: pl.DataFrame, i: int) -> dict | None:
    row = frame.row(i, named=True)
    if row["error"] is not None:
        return None
    return dict(item.split("=") for item in row["severities"].split(";") if item)


def test_same_rows_refused_and_same_findings(interpreter, both_paths):
    panels, frame = both_paths
    assert frame.height == len(panels)
    mismatches = []
    for i, panel in enumerate(panels):
        # the CSV cannot say "no medication list" with an empty cell: compare like with like
        if "medications" not in panel:
            panel = {**panel, "medications": []}
        expected, got = single(interpreter, panel), batch(frame, i)
        if expected != got:
            mismatches.append((i, panel, expected, got))
    assert not mismatches, mismatches[:3]


def test_every_code_is_exercised(interpreter, both_paths):
    _, frame = both_paths
    fired = set(frame["findings"].str.split(";").explode().drop_nulls()) - {""}
    assert fired == {r.code for r in interpreter.ruleset.rules}, {r.code for r in interpreter.ruleset.rules} - fired


def test_refusals_are_exercised(both_paths):
    _, frame = both_paths
    refused = frame["error"].drop_nulls()
    assert refused.len() > 100
    assert refused.str.contains("outside 18-120").any() and refused.str.contains("plausible range").any()
