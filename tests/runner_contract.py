"""The contract every runner of the ruleset passes (google/fhir-py's `_views_test_base.py`).

A runner takes panels (the API's JSON shape) and returns, per panel, either the refusals
`(where, words)` or the outcomes `{code: severity}` (None: not assessed). Each runner is a
subclass of `RunnerContract` (tests/test_runners.py); the suite is the same for all:
every rule's examples, the clinical vignettes, 10,000 generated panels compared with the
reference runner row by row, and the refusal texts, word for word.
"""

from __future__ import annotations

import csv
import functools
import random
import re
import tempfile
from abc import ABC, abstractmethod
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, ClassVar

import polars as pl
import yaml

from interpret.batch.job import wide_with_history
from interpret.batch.mapping import MappingFile, make_plan
from interpret.batch.read import frame_chunks, open_csv
from interpret.batch.run import BatchRun
from interpret.compact import expand
from interpret.pipeline import default_interpreter
from interpret.validate import InputError
from tests.conftest import ROOT
from tests.strategies import EDGES, MEDICATIONS, RANGES

Refused = tuple[tuple[str, str], ...]  # (analyte or patient field, words), sorted
Outcomes = dict[str, str | None]
Answer = Refused | Outcomes

VIGNETTES = yaml.safe_load((ROOT / "tests/fixtures/vignettes.yaml").read_text())
ANALYTES = list(RANGES)

# One bad cell or field each, and a few together: every refusal a row can carry.
REFUSAL_CASES: list[dict[str, Any]] = [
    {"results": [{"analyte": "potassium", "value": 25, "unit": "mmol/L"}]},
    {"results": [{"analyte": "magnesium", "value": -1, "unit": "mg/dL"}]},
    {"results": [{"analyte": "potassium", "value": 4.0, "unit": "furlongs"}]},
    {"results": [{"analyte": "potassium", "value": "abc", "unit": "mmol/L"}]},
    {"results": [{"analyte": "potassium", "value": "<2.0", "unit": "mmol/L"}]},
    {"results": [{"analyte": "sodium", "value": "3,4", "unit": "mmol/L"}]},
    {"results": [{"analyte": "glucose", "value": 400, "unit": "mmol/L"}]},
    {"results": [{"analyte": "potassium", "value": 4.0, "unit": "mmol/L"}], "patient": {"age": 15}},
    {"results": [{"analyte": "potassium", "value": 4.0, "unit": "mmol/L"}], "patient": {"age": 121, "sex": "z"}},
    {
        "results": [
            {"analyte": "potassium", "value": "abc", "unit": "mmol/L"},
            {"analyte": "sodium", "value": 1400, "unit": "mmol/L"},
            {"analyte": "creatinine", "value": 80, "unit": "mg/L"},
        ],
        "patient": {"age": 15, "sex": "female"},
    },
]


def generated_panel(rng: random.Random) -> dict[str, Any]:
    """Every analyte and unit, values at and around every threshold, laboratory ranges,
    medications, haemolysis, and some refusals (age 17 or 121, sex "z")."""
    results = []
    for analyte in rng.sample(ANALYTES, rng.randint(1, len(ANALYTES))):
        if analyte in EDGES and rng.random() < 0.35:
            value, unit = rng.choice(EDGES[analyte])
            value = round(value + rng.choice([0, 0, 0.01, -0.01]), 3)
        else:
            unit, low, high = rng.choice(RANGES[analyte])
            value = round(rng.uniform(low, high), rng.choice([0, 1, 2]))
        result: dict[str, Any] = {"analyte": analyte, "value": value, "unit": unit}
        if rng.random() < 0.05 and analyte != "egfr":
            low_end = round(value * rng.uniform(0.8, 1.1), 2)
            result["reference_range"] = {"low": low_end, "high": round(max(value, low_end) * rng.uniform(1.1, 1.6), 2)}
        results.append(result)
    panel: dict[str, Any] = {"results": results}
    patient: dict[str, Any] = {}
    if rng.random() < 0.85:
        patient["age"] = rng.choice([rng.randint(18, 99), rng.randint(18, 99), 17, 121])
    if rng.random() < 0.85:
        patient["sex"] = rng.choice(["female", "male", "female", "male", "other", "F", "m", "z"])
    if patient:
        panel["patient"] = patient
    if rng.random() < 0.8:
        panel["medications"] = rng.sample(MEDICATIONS, rng.randint(0, 5))
    if rng.random() < 0.5:
        panel["specimen"] = {"hemolyzed": rng.random() < 0.2}
    if rng.random() < 0.4:
        _add_history(panel, rng)
    return panel


SERIAL_RANGES = {"creatinine": (60, 400), "sodium": (112, 150), "potassium": (2.4, 5.5)}


def _add_history(panel: dict[str, Any], rng: random.Random) -> None:
    """Earlier specimens 1-200 h before, around the serial windows (24, 48, 72, 168 h), with
    offsets other than Z, and potassium supplements started at known times."""
    now = datetime(2026, 1, 10, 8, tzinfo=UTC)
    panel["collected_at"] = now.isoformat()
    history = []
    for _ in range(rng.randint(1, 3)):
        hours = rng.choice([rng.uniform(1, 200), 24, 48, 72, 168, 47.9, 48.1])
        offset = timezone(timedelta(hours=rng.choice([-5, 0, 1, 2])))
        results = []
        for analyte, (low, high) in SERIAL_RANGES.items():
            if rng.random() < 0.7:
                unit = "umol/L" if analyte == "creatinine" else "mmol/L"
                results.append({"analyte": analyte, "value": round(rng.uniform(low, high), 1), "unit": unit})
        if results:
            at = (now - timedelta(hours=hours)).astimezone(offset).isoformat()
            history.append({"collected_at": at, "results": results})
    if history:
        panel["history"] = history
    if "medications" in panel and rng.random() < 0.5:
        start = (now - timedelta(hours=rng.choice([2, 4, 10, 30, 80]))).isoformat()
        panel["medications"] = [*panel["medications"], {"name": "KCl 20 mEq", "start": start}]


def without_starts(panel: dict[str, Any]) -> dict[str, Any]:
    """What a runner that carries no medication start times sees of a panel."""
    if "medications" not in panel:
        return panel
    return {**panel, "medications": [m if isinstance(m, str) else m["name"] for m in panel["medications"]]}


def start_codes() -> set[str]:
    """The rules that read when a medication was started (`started_after`)."""
    from interpret.ruleset.conditions import StartedAfter

    rules = default_interpreter().ruleset.rules
    return {r.code for r in rules if any(isinstance(n, StartedAfter) for n in r.nodes())}


GENERATED = [generated_panel(random.Random(20261123 + i)) for i in range(10_000)]


class RunnerContract(ABC):
    """Subclass with `run`; pytest collects the tests below for every runner.

    A runner that carries no medication start times (`carries_starts = False`: a wide batch
    row) is compared with the reference run without them, and must never fire a rule that
    reads them (`started_after`)."""

    carries_starts = True

    @abstractmethod
    def run(self, panels: list[dict[str, Any]]) -> list[Answer]: ...

    def test_every_rule_example(self):
        cases, expected = [], []
        for rule in default_interpreter().ruleset.rules:
            examples = rule.definition.examples
            for kind, found in (("fires", examples.fires), ("silent", examples.silent)):
                for case in found:
                    cases.append(expand(case.panel))
                    expected.append((rule.code, kind, case.severity))
        wrong = []
        starts = set() if self.carries_starts else start_codes()
        for panel, (code, kind, severity), got in zip(cases, expected, self.run(cases), strict=True):
            assert isinstance(got, dict), (code, panel, got)
            if code in starts:  # never fires without start times
                if got.get(code) is not None:
                    wrong.append((code, "fired without start times", got.get(code)))
                continue
            fired = got.get(code) is not None
            if (kind == "fires") != fired or (kind == "fires" and severity and got[code] != severity):
                wrong.append((code, kind, severity, got.get(code)))
        assert not wrong, wrong[:5]

    def test_every_vignette(self):
        answers = self.run([expand(v["panel"]) for v in VIGNETTES])
        serial = set() if self.carries_starts else start_codes()  # without start times: never fired
        for vignette, got in zip(VIGNETTES, answers, strict=True):
            assert isinstance(got, dict), (vignette["name"], got)
            for code, severity in vignette.get("fires", {}).items():
                assert got.get(code) == (None if code in serial else severity), (vignette["name"], code, got.get(code))
            for code in vignette.get("silent", []):
                assert got.get(code) is None, (vignette["name"], code)
            for code in vignette.get("not_assessed", []):
                assert code in got and got[code] is None, (vignette["name"], code)

    def test_generated_panels_match_the_reference_row_by_row(self):
        panels = GENERATED if self.carries_starts else [without_starts(p) for p in GENERATED]
        reference, answers = reference_answers(self.carries_starts), self.run(panels)
        wrong = [(i, r, a) for i, (r, a) in enumerate(zip(reference, answers, strict=True)) if r != a]
        assert not wrong, wrong[:3]
        assert sum(isinstance(a, tuple) for a in answers) > 100  # refusals are exercised
        fired = {code for a in answers if isinstance(a, dict) for code, severity in a.items() if severity}
        every = {r.code for r in default_interpreter().ruleset.rules}
        assert fired == (every if self.carries_starts else every - start_codes())  # and every rule fires

    def test_refusal_texts_are_word_for_word_the_same(self):
        expected = ClosuresRunner().run(REFUSAL_CASES)
        assert all(isinstance(e, tuple) and e for e in expected), expected
        assert self.run(REFUSAL_CASES) == expected


class ClosuresRunner(RunnerContract):
    """The single-panel path with the closure evaluator: the reference."""

    closures = True

    def run(self, panels: list[dict[str, Any]]) -> list[Answer]:
        interpreter = default_interpreter()
        answers: list[Answer] = []
        for panel in panels:
            try:
                parsed = interpreter.evaluate(panel)
            except InputError as exc:
                answers.append(tuple(sorted((_field(panel, e.path), e.message) for e in exc.errors)))
                continue
            facts = parsed[1]
            outcomes = interpreter.engine.evaluate_by_closures(facts) if self.closures else parsed[2]
            answers.append({o.rule.code: o.severity for o in outcomes})
        return answers


@functools.cache
def reference_answers(with_starts: bool = True) -> list[Answer]:
    return ClosuresRunner().run(GENERATED if with_starts else [without_starts(p) for p in GENERATED])


def _field(panel: dict[str, Any], path: tuple[str | int, ...]) -> str:
    """The analyte or patient field a refusal concerns, as a batch row names it."""
    if path[:1] == ("results",) and len(path) > 1:
        return str(panel["results"][path[1]]["analyte"])
    return str(path[-1])


class GeneratedRunner(ClosuresRunner):
    """The single-panel path with the generated Python (`codegen.py`): what the API runs."""

    closures = False


class PolarsRunner(RunnerContract):
    """The batch runner: each panel a CSV row, one column per analyte, unit and range."""

    # Each panel is a row; its earlier specimens are rows of the same patient before it
    # (mapping `history:`). A wide row carries no medication start times: `started_after`
    # is unknown here, and the reference is run without starts too.
    carries_starts = False
    engine = "polars"

    HEADERS: ClassVar[list[str]] = [f"{a}{s}" for a in ANALYTES for s in ("", "_unit", "_low", "_high")]
    HEADERS += ["age", "sex", "hemolyzed", "patient", "taken"]
    LABEL = re.compile(r"; (?=(?:\w+ \(column '[^']*'\)|age|sex|hemolyzed): )")

    def run(self, panels: list[dict[str, Any]]) -> list[Answer]:
        # A CSV cell cannot say "no medication list": panels without one go in a file without
        # the column, so that the runner sees what the single panel sees.
        answers: list[Answer | None] = [None] * len(panels)
        for with_meds in (True, False):
            chosen = [i for i, p in enumerate(panels) if ("medications" in p) == with_meds]
            if chosen:
                for i, answer in zip(chosen, self._run_file([panels[i] for i in chosen], with_meds), strict=True):
                    answers[i] = answer
        return answers  # type: ignore[return-value]

    def _run_file(self, panels: list[dict[str, Any]], with_meds: bool) -> list[Answer]:
        with tempfile.TemporaryDirectory(prefix="contract-") as tmp:
            return self._run_csv(Path(tmp) / "panels.csv", panels, with_meds)

    def _run_csv(self, path: Path, panels: list[dict[str, Any]], with_meds: bool) -> list[Answer]:
        headers = self.HEADERS + (["medications"] if with_meds else [])
        rows, current = [], []
        for i, panel in enumerate(panels):
            for entry in panel.get("history", []):  # earlier specimens: rows of the same patient
                earlier = {"results": entry["results"], "patient": panel.get("patient", {})}
                rows.append({**_row(earlier), "patient": f"p{i}", "taken": entry["collected_at"]})
            current.append(len(rows))
            rows.append({**_row(panel), "patient": f"p{i}", "taken": panel.get("collected_at", "")})
        with path.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=headers)
            writer.writeheader()
            writer.writerows(rows)
        rs = default_interpreter().ruleset
        source = open_csv(path)
        mapping = MappingFile.model_validate({"history": {"patient_key": "patient", "time": "taken"}})
        plan = make_plan(source.headers, mapping, rs, {}, None, None, [])
        whole, plan = wide_with_history(rs, plan, source, mapping, None)  # as `interpret batch` does
        run = BatchRun(rs, plan, source, self.engine)
        frame = pl.concat([run.evaluate(chunk, severities=True)[0] for chunk in frame_chunks(whole, 4000)])
        answers = [self._answer(row) for row in frame.select("error", "severities", "not_assessed").iter_rows()]
        return [answers[k] for k in current]

    def _answer(self, row: tuple[Any, ...]) -> Answer:
        error, severities, not_assessed = row
        if error is not None:
            parts = [p.split(": ", 1) for p in self.LABEL.split(error)]
            return tuple(sorted((label.split(" (column")[0], words) for label, words in parts))
        found: Outcomes = {c: None for c in (not_assessed or "").split(";") if c}
        found.update(dict(item.split("=") for item in (severities or "").split(";") if item))
        return found


def _row(panel: dict[str, Any]) -> dict[str, str]:
    row: dict[str, str] = {}
    for r in panel["results"]:
        row[r["analyte"]] = str(r["value"])
        row[f"{r['analyte']}_unit"] = r["unit"]
        for end in ("low", "high"):
            if end in r.get("reference_range", {}):
                row[f"{r['analyte']}_{end}"] = repr(r["reference_range"][end])
    patient = panel.get("patient", {})
    row["age"] = str(patient.get("age", ""))
    row["sex"] = patient.get("sex", "")
    if "medications" in panel:
        row["medications"] = ";".join(m if isinstance(m, str) else m["name"] for m in panel["medications"])
    hemolyzed = panel.get("specimen", {}).get("hemolyzed")
    row["hemolyzed"] = "" if hemolyzed is None else ("yes" if hemolyzed else "no")
    return row
