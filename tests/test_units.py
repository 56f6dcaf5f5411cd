"""Unit conversions: hand-computed values, valence (UCUM's trap), aliases, round trips."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from interpret.ruleset import default_ruleset

UNITS = default_ruleset().units

# (analyte, unit, value, canonical value computed by hand from molar mass and valence)
HAND = [
    ("magnesium", "mg/dL", 1.0, 10 / 24.305),  # 0.411438 mmol/L
    ("magnesium", "mg/dL", 1.7, 0.69944),
    ("magnesium", "mEq/L", 2.0, 1.0),  # divalent: UCUM's 1 eq = 1 mol would give 2.0
    ("calcium", "mg/dL", 10.0, 100 / 40.078),  # 2.4951 mmol/L
    ("calcium", "mEq/L", 5.0, 2.5),
    ("creatinine", "mg/dL", 1.0, 10000 / 113.12),  # 88.40 umol/L
    ("creatinine", "mmol/L", 0.1, 100.0),
    ("glucose", "mg/dL", 180.156, 10.0),
    ("albumin", "g/dL", 4.0, 40.0),
    ("potassium", "mEq/L", 4.1, 4.1),
    ("sodium", "mEq/L", 140.0, 140.0),
]


@pytest.mark.parametrize(("analyte", "unit", "value", "expected"), HAND)
def test_conversion_against_hand_computed_value(analyte, unit, value, expected):
    assert value * UNITS.factor(analyte, unit) == pytest.approx(expected, rel=1e-4)


@pytest.mark.parametrize(
    ("spelling", "key"),
    [
        ("mmol/L", "mmol/L"),
        ("mmol/l", "mmol/L"),
        ("meq/L", "mEq/L"),
        ("MEQ/L", "mEq/L"),
        ("µmol/L", "umol/L"),  # U+00B5 micro sign
        ("μmol/L", "umol/L"),  # U+03BC Greek mu
        ("umol/L", "umol/L"),
        ("mL/min/{1.73_m2}", "mL/min/1.73m2"),
        (" mg/dL ", "mg/dL"),
    ],
)
def test_unit_spellings(spelling, key):
    assert UNITS.resolve(spelling) == key


def test_unknown_units_are_not_guessed():
    assert UNITS.resolve("furlongs") is None
    with pytest.raises(ValueError):
        UNITS.factor("creatinine", "mL/min/1.73m2")


PAIRS = [(a, u) for a, d in UNITS.analytes.items() for u in d.units]


@given(st.sampled_from(PAIRS), st.floats(min_value=1e-3, max_value=1e4))
def test_round_trip_through_canonical(pair, value):
    analyte, unit = pair
    canonical = value * UNITS.factor(analyte, unit)
    assert math.isclose(canonical / UNITS.factor(analyte, unit), value, rel_tol=1e-12)


@given(st.sampled_from(list(UNITS.analytes)), st.floats(min_value=1e-3, max_value=1e4))
def test_conversions_between_any_two_units_agree(analyte, value):
    units = UNITS.analytes[analyte].units
    for a in units:
        for b in units:
            via_canonical = value * UNITS.factor(analyte, a) / UNITS.factor(analyte, b)
            back = via_canonical * UNITS.factor(analyte, b) / UNITS.factor(analyte, a)
            assert math.isclose(back, value, rel_tol=1e-12)
