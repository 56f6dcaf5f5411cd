"""Derived values against published worked examples (clinical-reference.md §3)."""

from __future__ import annotations

import pytest

from interpret import derive
from interpret.compact import expand
from interpret.models import to_dict
from interpret.prepare import egfr_category
from interpret.ruleset import default_ruleset

# clinical-reference.md §3.1.3, computed with the exact published equation (NKF: M 50 y, 1.0 -> 92)
EGFR = [
    ("male", 50, 1.00, 91.69),
    ("male", 50, 0.80, 107.82),  # the MedCalc-Bench kappa bug branch would give 99.94
    ("male", 50, 0.90, 104.05),
    ("male", 40, 0.60, 125.15),
    ("male", 18, 0.50, 151.62),
    ("male", 50, 90 / 88.40, 89.74),
    ("male", 70, 2.00, 35.24),
    ("female", 50, 1.00, 68.63),
    ("female", 30, 0.60, 123.76),
    ("female", 60, 0.70, 98.95),
    ("female", 45, 1.50, 43.52),
    ("female", 80, 3.00, 15.24),
]


@pytest.mark.parametrize(("sex", "age", "scr", "expected"), EGFR)
def test_ckd_epi_2021_worked_examples(sex, age, scr, expected):
    assert derive.ckd_epi_2021(scr, age, sex == "female") == pytest.approx(expected, abs=0.01)


@pytest.mark.parametrize(
    ("value", "category"),
    [
        (120, "G1"),
        (90, "G1"),
        (89.99, "G2"),
        (60, "G2"),
        (59.6, "G3a"),
        (45, "G3a"),
        (44.9, "G3b"),
        (30, "G3b"),
        (29.9, "G4"),
        (15, "G4"),
        (14.99, "G5"),
        (3, "G5"),
    ],
)
def test_kdigo_categories_on_the_unrounded_value(value, category):
    assert egfr_category(value, default_ruleset())[0] == category


def test_corrected_calcium_worked_example(interpreter):
    # Ca 7.6 mg/dL (1.8963 mmol/L), albumin 2.0 g/dL: SI form gives 2.296 mmol/L (9.2 mg/dL)
    result = interpreter.interpret(expand({"calcium": "7.6 mg/dL", "albumin": "2.0 g/dL"}))
    assert result.derived["corrected_calcium"].value == pytest.approx(2.296, abs=0.001)
    assert "albumin" in result.derived["corrected_calcium"].inputs


def test_calcium_is_not_corrected_when_albumin_is_not_low(interpreter):
    result = interpreter.interpret(expand({"calcium": "2.0 mmol/L", "albumin": "45 g/L"}))
    assert "corrected_calcium" not in result.derived


def test_corrected_sodium_names_both_factors(interpreter):
    # Na 128, glucose 600 mg/dL: Hillier 140.0, Katz 136.0 (clinical-reference.md §3.4)
    result = interpreter.interpret(expand({"sodium": "128 mmol/L", "glucose": "600 mg/dL"}))
    derived = result.derived["corrected_sodium"]
    assert derived.value == pytest.approx(140.0, abs=0.01)
    assert derived.alternatives["Katz"] == pytest.approx(136.0, abs=0.01)
    assert "Hillier" in derived.formula


def test_corrected_sodium_only_above_the_trigger(interpreter):
    result = interpreter.interpret(expand({"sodium": "138 mmol/L", "glucose": "180 mg/dL"}))
    assert "corrected_sodium" not in result.derived


def test_egfr_output_keys(interpreter):
    result = to_dict(interpreter.interpret(expand({"creatinine": "1.0 mg/dL", "age": 50, "sex": "male"})))
    assert result["derived"]["egfr"]["value"] == pytest.approx(91.69, abs=0.01)
    assert result["derived"]["egfr"]["category"] == "G1"
    assert result["derived"]["egfr"]["inputs"]["age"] == "50"


def test_a_correction_landing_exactly_on_a_limit_is_decided_as_on_it(interpreter):
    """2.35 mmol/L with albumin 30 g/L corrects to exactly 2.55, the interval's inclusive top:
    normal, not high (binary floating point alone gives 2.5500000000000003)."""
    from decimal import Decimal

    for ca, alb in [(2.35, 30.0), (1.87, 26.0), (2.16, 20.5)]:
        exact = Decimal(str(ca)) + Decimal("0.02") * (40 - Decimal(str(alb)))
        assert derive.corrected_calcium(ca, alb, 0.02, 40.0) == float(exact)
    result = interpreter.interpret(expand({"calcium": "2.35 mmol/L", "albumin": "30 g/L"}))
    assert result.derived["corrected_calcium"].status == "normal"
    assert not any(f.code == "hypercalcemia" for f in result.findings)


def test_corrections_equal_their_exact_decimal_value_over_a_grid():
    from decimal import Decimal

    for ca in range(180, 300):
        for alb in range(150, 450, 5):
            exact = Decimal(ca) / 100 + Decimal("0.02") * (40 - Decimal(alb) / 10)
            assert derive.corrected_calcium(ca / 100, alb / 10, 0.02, 40.0) == float(exact)
    for na in range(110, 160):
        for glucose in range(100, 1000, 7):
            exact = na + Decimal("1.6") * (glucose - 100) / 100
            assert derive.corrected_sodium(float(na), float(glucose), 1.6, 100.0) == float(exact)


def test_calcium_in_mg_dl_is_corrected_in_the_form_written_for_mg_dl(interpreter):
    """MIMIC-IV demo: Ca 9.8 mg/dL, albumin 3.5 g/dL. With 0.8 × (4.0 − albumin g/dL), the form
    clinicians' calculators use, that is 10.2 mg/dL: the interval's inclusive top, normal. The SI
    form's 0.02 mmol/L per g/L (0.8016 mg/dL per g/dL) gives 10.2008: high, a hypercalcaemia that
    a clinician checking the figure would not find."""
    result = interpreter.interpret(expand({"calcium": "9.8 mg/dL", "albumin": "3.5 g/dL", "age": 60, "sex": "female"}))
    corrected = result.derived["corrected_calcium"]
    assert corrected.status == "normal" and corrected.shown.startswith("10.2 mg/dL")
    assert "0.8 × (4 − albumin g/dL)" in corrected.formula
    assert not any(f.code == "hypercalcemia" for f in result.findings)


def test_mg_dl_corrections_decide_as_the_decimal_formula_does_over_a_grid(interpreter):
    from decimal import Decimal

    wrong = []
    for ca in range(70, 115):  # 7.0 to 11.4 mg/dL
        for alb in range(15, 40, 1):  # 1.5 to 3.9 g/dL
            exact = Decimal(ca) / 10 + Decimal("0.8") * (Decimal("4.0") - Decimal(alb) / 10)
            expected = (  # rules/analytes.yaml, calcium in mg/dL: interval 8.6–10.2, critical < 7.0 and >= 13.0
                "critical_low"
                if exact < 7
                else "critical_high"
                if exact >= 13
                else "low"
                if exact < Decimal("8.6")
                else "high"
                if exact > Decimal("10.2")
                else "normal"
            )
            result = interpreter.interpret(
                expand({"calcium": f"{ca / 10} mg/dL", "albumin": f"{alb / 10} g/dL", "age": 60, "sex": "female"})
            )
            if result.derived["corrected_calcium"].status != expected:
                wrong.append((ca / 10, alb / 10, float(exact)))
    assert wrong == []


def test_anion_gap_and_osmolality_against_the_worked_examples(interpreter):
    """clinical-reference.md §3.6: Na 140, glucose 90 mg/dL, BUN 14 mg/dL -> 290.0 mOsm/kg
    (MedCalc-Bench's sOsm uses /18 and /2.8; our exact molar masses give 289.99). Anion gap
    by hand: 140 − (100 + 20) = 20, + 0.25 × (40 − 20 g/L) = 25."""
    panel = {
        "results": [
            {"analyte": "sodium", "value": 140, "unit": "mmol/L"},
            {"analyte": "chloride", "value": 100, "unit": "mmol/L"},
            {"analyte": "bicarbonate", "value": 20, "unit": "mmol/L"},
            {"analyte": "albumin", "value": 20, "unit": "g/L"},
            {"analyte": "glucose", "value": 90, "unit": "mg/dL"},
            {"analyte": "BUN", "value": 14, "unit": "mg/dL"},
        ]
    }
    derived = interpreter.interpret(panel).derived
    assert abs(derived["osmolality"].value - 290.0) < 0.05
    assert derived["anion_gap"].value == 25.0 and derived["anion_gap"].status == "high"
    del panel["results"][3]  # no albumin: not corrected
    assert interpreter.interpret(panel).derived["anion_gap"].value == 20.0


def test_a_calculated_value_is_never_an_input(interpreter):
    import pytest

    from interpret.validate import InputError

    with pytest.raises(InputError) as refused:
        interpreter.interpret({"results": [{"analyte": "anion_gap", "value": 12, "unit": "mmol/L"}]})
    assert "not a known analyte" in str(refused.value.errors)


@pytest.mark.parametrize("sodium", [118, 132, 140, 158])
@pytest.mark.parametrize("glucose_mg_dl", [45, 90, 250, 900])
@pytest.mark.parametrize("bun_mg_dl", [4, 14, 60, 140])
def test_osmolality_agrees_with_medcalc_bench_verified(interpreter, sodium, glucose_mg_dl, bun_mg_dl):
    """MedCalc-Bench-Verified calculator_implementations/sOsm.py: 2 × Na + BUN/2.8 + glucose/18
    (mg/dL). Ours converts by molar masses (28.014, 180.156), so the two agree within their
    rounding of those constants: under 0.1 mOsm/kg over this grid."""
    panel = {
        "results": [
            {"analyte": "sodium", "value": sodium, "unit": "mmol/L"},
            {"analyte": "glucose", "value": glucose_mg_dl, "unit": "mg/dL"},
            {"analyte": "BUN", "value": bun_mg_dl, "unit": "mg/dL"},
        ]
    }
    ours = interpreter.interpret(panel).derived["osmolality"].value
    medcalc = 2 * sodium + bun_mg_dl / 2.8 + glucose_mg_dl / 18
    assert ours == pytest.approx(medcalc, abs=0.1)


@pytest.mark.parametrize(
    ("sodium", "chloride", "bicarbonate", "albumin_g_dl"),
    [(140, 104, 24, 4.0), (136, 98, 12, 2.1), (150, 120, 30, 3.3)],
)
def test_anion_gap_agrees_with_medcalc_bench_verified(interpreter, sodium, chloride, bicarbonate, albumin_g_dl):
    """MedCalc-Bench-Verified anion_gap.py (Na − (Cl + HCO3)) and albumin_corrected_anion.py
    (+ 2.5 × (4 − albumin g/dL)), which is our + 0.25 × (40 − albumin g/L)."""
    panel = {
        "results": [
            {"analyte": "sodium", "value": sodium, "unit": "mmol/L"},
            {"analyte": "chloride", "value": chloride, "unit": "mmol/L"},
            {"analyte": "bicarbonate", "value": bicarbonate, "unit": "mmol/L"},
            {"analyte": "albumin", "value": albumin_g_dl, "unit": "g/dL"},
        ]
    }
    ours = interpreter.interpret(panel).derived["anion_gap"].value
    assert ours == pytest.approx(sodium - (chloride + bicarbonate) + 2.5 * (4 - albumin_g_dl), abs=1e-6)
