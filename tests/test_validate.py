"""Every class of refused input gets an error that names its field."""

from __future__ import annotations

import math

import pytest

from interpret.validate import InputError


def panel(*results, **extra):
    return {"results": list(results), **extra}


def k(value=4.0, unit="mmol/L", **more):
    return {"analyte": "potassium", "value": value, "unit": unit, **more}


def errors(interpreter, data):
    with pytest.raises(InputError) as info:
        interpreter.evaluate(data)
    return {e.location: e.message for e in info.value.errors}


@pytest.mark.parametrize(
    ("data", "location", "words"),
    [
        (
            panel(k(unit="furlongs")),
            "results[0].unit",
            "'furlongs' is not a unit for potassium; accepted: mmol/L, mEq/L",
        ),
        (
            panel({"analyte": "creatinine", "value": 90, "unit": "mL/min"}),
            "results[0].unit",
            "not a unit for creatinine",
        ),
        (
            panel(k(), {"analyte": "potasium", "value": 1, "unit": "mmol/L"}),
            "results[1].analyte",
            "not a known analyte",
        ),
        (panel(k(value=-1)), "results[0].value", "negative"),
        (panel(k(value=45)), "results[0].value", "outside the plausible range"),
        (panel(k(value=0.2)), "results[0].value", "outside the plausible range"),
        (panel(k(value="abc")), "results[0].value", "'abc' is not a number"),
        (panel(k(value=math.inf)), "results[0].value", "finite"),
        (panel(k(value=math.nan)), "results[0].value", "finite"),
        (panel(k(), k(value=3.0)), "results[1]", "given twice with different values"),
        (panel(k(), patient={"age": 17}), "patient.age", "outside 18-120"),
        (panel(k(), patient={"age": 121}), "patient.age", "outside 18-120"),
        (panel(k(), patient={"sex": "robot"}), "patient.sex", "not accepted"),
        (panel(), "results", "at least 1"),
        (panel(k(), colour="blue"), "colour", "Extra inputs"),
        (panel(k(), medications=["furosemide", "  "]), "medications[1]", "empty"),
        (
            panel(k(reference_range={"low": 5, "high": 3})),
            "results[0].reference_range",
            "low is above high",
        ),
        (
            panel({"analyte": "sodium", "value": 1400, "unit": "mmol/L"}),
            "results[0].value",
            "plausible",
        ),
        (
            panel({"analyte": "glucose", "value": 400, "unit": "mmol/L"}),
            "results[0].value",
            "plausible",
        ),
    ],
)
def test_refused_with_a_located_error(interpreter, data, location, words):
    found = errors(interpreter, data)
    assert location in found, found
    assert words in found[location]


def test_all_errors_are_reported_at_once(interpreter):
    found = errors(interpreter, panel(k(unit="x"), k(value=-2), patient={"age": 5}))
    assert {"results[0].unit", "results[1].value", "patient.age"} <= set(found)


def test_same_value_twice_in_different_units_is_accepted(interpreter):
    p, _, _ = interpreter.evaluate(panel(k(value=4.0), k(value=4.0, unit="mEq/L")))
    assert p.results["potassium"].canonical == 4.0


def test_loinc_code_and_aliases_name_an_analyte(interpreter):
    p, _, _ = interpreter.evaluate(
        panel(
            {"analyte": "2823-3", "value": 4.0, "unit": "mEq/L"},
            {"analyte": "19123-9", "value": 2.0, "unit": "mg/dL"},
            {"analyte": "Calcium, total", "value": 9.0, "unit": "mg/dL"},
        )
    )
    assert set(p.results) == {"potassium", "magnesium", "calcium"}


def test_survivable_extremes_pass_and_ask_for_verification(interpreter):
    _, facts, _ = interpreter.evaluate(panel({"analyte": "glucose", "value": 311, "unit": "mmol/L"}))
    assert facts.quantities["glucose"].verify


@pytest.mark.parametrize(
    ("given", "normalised"),
    [("F", "female"), ("m", "male"), ("Female", "female"), ("other", "other")],
)
def test_sex_spellings(interpreter, given, normalised):
    p, _, _ = interpreter.evaluate(panel(k(), patient={"sex": given}))
    assert p.sex == normalised


def test_a_censored_value_is_named_as_such(interpreter):
    """A laboratory's "<2.0" or ">60" is a bound, not a number: say so, at the field."""
    from interpret.validate import InputError

    for text in (">60", "<2.0", " ≤ 0.5"):
        with pytest.raises(InputError) as info:
            interpreter.interpret({"results": [{"analyte": "egfr", "value": text, "unit": "mL/min/1.73m2"}]})
        assert [(e.location, e.code, e.message) for e in info.value.errors] == [
            (
                "results[0].value",
                "censored",
                f"{text.strip()!r} is a bound (a censored value), not a result: give the number, or leave it out",
            )
        ]


def _serial(**extra):
    panel = {
        "collected_at": "2026-01-10T08:00:00Z",
        "results": [{"analyte": "creatinine", "value": 120, "unit": "umol/L"}],
        "history": [
            {
                "collected_at": "2026-01-09T08:00:00Z",
                "results": [{"analyte": "creatinine", "value": 90, "unit": "umol/L"}],
            }
        ],
    }
    panel.update(extra)
    return panel


def test_an_earlier_result_is_refused_exactly_as_a_current_one(interpreter):
    from interpret.validate import InputError

    bad = _serial()
    bad["history"].append(
        {"collected_at": "2026-01-08T08:00:00Z", "results": [{"analyte": "creatinine", "value": 80, "unit": "mL/min"}]}
    )
    with pytest.raises(InputError) as info:
        interpreter.interpret(bad)
    assert [(e.location, e.code) for e in info.value.errors] == [("history[1].results[0].unit", "unit")]


def test_history_times_are_instants_and_a_later_entry_is_named(interpreter):
    """09:00+01:00 on the 9th is 08:00 Z: 24 h before. An entry after collected_at is no
    earlier result: named in the report, not used."""
    panel = _serial()
    panel["history"][0]["collected_at"] = "2026-01-09T09:00:00+01:00"
    panel["history"].append(
        {"collected_at": "2026-01-10T09:00:00Z", "results": [{"analyte": "creatinine", "value": 50, "unit": "umol/L"}]}
    )
    r = interpreter.interpret(panel)
    assert [(e.label, e.hours_before) for e in r.earlier] == [("Creatinine", 24.0)]
    assert "history[1]" in r.history_notes[0] and "not earlier" in r.history_notes[0]
    assert "acute_kidney_injury" in {f.code for f in r.findings}  # 120 - 90 = 30 >= 26.5 within 48 h


def test_history_without_collected_at_is_not_used_and_says_why(interpreter):
    panel = _serial()
    del panel["collected_at"]
    r = interpreter.interpret(panel)
    aki = next(n for n in r.not_assessed if n.code == "acute_kidney_injury")
    assert any("give collected_at" in m for m in aki.missing), aki.missing
    assert r.earlier == []


def test_a_naive_time_is_refused(interpreter):
    from interpret.validate import InputError

    with pytest.raises(InputError) as info:
        interpreter.interpret(_serial(collected_at="2026-01-10T08:00:00"))
    assert info.value.errors[0].location == "collected_at"


def test_a_medication_stopped_before_the_specimen_is_not_current(interpreter):
    panel = _serial(
        results=[{"analyte": "potassium", "value": 3.1, "unit": "mmol/L"}],
        medications=[{"name": "furosemide 40 mg", "stop": "2026-01-05T00:00:00Z"}],
    )
    _, facts, _ = interpreter.evaluate(panel)
    assert facts.classes is not None and "loop_diuretic" not in facts.classes
