"""Report wording: a statement never reads as contradicting the decision it explains.

A finding's evidence sets a number beside a limit ("eGFR 29.6 is below 30", "calcium 2.146:
low; 2.15–2.55"). Rounded for display, the number must stay on its true side of that limit,
or a clinician reads the tool as wrong (and may trust it less where it is right).
"""

from __future__ import annotations

import re

from hypothesis import HealthCheck, given, settings

from interpret.compact import expand
from interpret.units import format_beside, format_number
from interpret.validate import InputError
from tests.strategies import panels

COMPARED = re.compile(
    r" (?P<value>-?\d+(?:\.\d+)?) (?P<unit>[^()]+?)(?: \([^)]*\))? is (?P<negated>not )?"
    r"(?P<op>below|above|at or below|at or above) (?P<limit>-?\d+(?:\.\d+)?) (?P<limit_unit>[^(]+?)(?: \(|$)"
)
STATUS = re.compile(
    r" (?P<value>-?\d+(?:\.\d+)?) (?P<unit>[^()]+?)(?: \([^)]*\))?(?: \([^)]*\))?: "
    r"(?P<status>low|high|within the interval); (?P<low>-?\d+(?:\.\d+)?)–(?P<high>-?\d+(?:\.\d+)?) (?P<range_unit>.+?),"
)
HOLDS = {
    "below": lambda v, t: v < t,
    "above": lambda v, t: v > t,
    "at or below": lambda v, t: v <= t,
    "at or above": lambda v, t: v >= t,
}


def contradictions(statement: str) -> list[str]:
    """What a reader comparing the printed numbers would find wrong (same unit only)."""
    found = []
    for m in COMPARED.finditer(statement):
        if m["unit"].strip() != m["limit_unit"].strip():
            continue  # a limit written in another unit: nothing to compare by eye
        reads = HOLDS[m["op"]](float(m["value"]), float(m["limit"]))
        if reads == bool(m["negated"]):
            found.append(statement)
    for m in STATUS.finditer(statement):
        if m["unit"].strip() != m["range_unit"].strip():
            continue
        value, low, high = float(m["value"]), float(m["low"]), float(m["high"])
        reads = "low" if value < low else "high" if value > high else "within the interval"
        if reads != m["status"]:
            found.append(statement)
    return found


def statements(interpretation) -> list[str]:
    return [e.statement for f in interpretation.findings for e in f.evidence]


def test_the_checker_sees_a_contradiction():
    assert contradictions("eGFR 30 mL/min/1.73 m² is below 30 mL/min/1.73 m²")
    assert contradictions("Calcium 2.15 mmol/L: low; 2.15–2.55 mmol/L, default adult interval")
    assert not contradictions("eGFR 29.6 mL/min/1.73 m² is below 30 mL/min/1.73 m²")
    assert not contradictions("Magnesium 1.7 mg/dL (0.699 mmol/L) is not below 0.7 mmol/L (1.7 mg/dL for mg/dL)")


def test_egfr_just_below_a_boundary_is_not_shown_as_the_boundary(interpreter):
    """Female, 76 years, creatinine 156 µmol/L: CKD-EPI 2021 gives 29.5 (G4). Shown as the
    whole number 30 it would read as G3b and as not below the rules' 30."""
    result = interpreter.interpret(expand({"creatinine": "156 umol/L", "age": 76, "sex": "female"}))
    egfr = result.derived["egfr"]
    assert 29 < egfr.value < 30 and egfr.category == "G4"
    reduced = next(f for f in result.findings if f.code == "reduced_egfr")
    assert "eGFR 29.5 mL/min/1.73 m²" in reduced.message
    assert "eGFR 29.5 mL/min/1.73 m² is below 30 mL/min/1.73 m²" in statements(result)
    assert egfr.shown == "29.5 mL/min/1.73 m²"  # the derived values' table says the same


def test_egfr_is_a_whole_number_where_rounding_keeps_its_category(interpreter):
    result = interpreter.interpret(expand({"creatinine": "100 umol/L", "age": 76, "sex": "female"}))
    reduced = next(f for f in result.findings if f.code == "reduced_egfr")
    assert re.search(r"eGFR \d+ mL/min/1\.73 m² \(", reduced.message)


def test_corrected_calcium_just_below_the_interval_keeps_its_decimals(interpreter):
    """2.10 mmol/L with albumin 37.7 g/L: corrected 2.146 (low), not "2.15" (the interval's start)."""
    result = interpreter.interpret(expand({"calcium": "2.10 mmol/L", "albumin": "37.7 g/L"}))
    assessed = [s for s in statements(result) if s.startswith("Calcium ")]
    assert assessed and all(not contradictions(s) for s in assessed)
    assert any("2.146 mmol/L" in s for s in assessed)
    assert result.derived["corrected_calcium"].shown == "2.146 mmol/L"


def test_numbers_of_100_and_over_keep_a_decimal_that_is_there():
    assert format_number(134.6) == "134.6"
    assert format_number(135.0) == "135"
    assert format_number(140.04) == "140"
    assert format_number(1234.56) == "1234.6"
    assert format_number(0.6994) == "0.699"


def test_format_beside_adds_decimals_only_where_rounding_would_cross():
    assert format_beside(2.146, [2.15, 2.55]) == "2.146"
    assert format_beside(2.15, [2.15]) == "2.15"
    assert format_beside(134.96, [135, 145]) == "134.96"
    assert format_beside(4.21, [3.5, 5.0]) == "4.21"
    assert format_beside(3.2, [float("-inf"), float("inf")]) == "3.2"


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(panels())
def test_no_evidence_statement_reads_as_contradicting_its_decision(interpreter, panel):
    try:
        result = interpreter.interpret(panel)
    except InputError:
        return
    wrong = [c for s in statements(result) for c in contradictions(s)]
    assert wrong == []


def test_derived_values_swept_across_their_boundaries_never_read_wrong(interpreter):
    """eGFR over creatinine, age and sex; corrected calcium over calcium and albumin; corrected
    sodium over sodium and glucose: every value lands near some boundary somewhere."""
    panels = [
        {"creatinine": f"{scr} umol/L", "age": age, "sex": sex}
        for scr in range(40, 400, 2)
        for age in (30, 55, 76, 90)
        for sex in ("female", "male")
    ]
    panels += [
        {"calcium": f"{ca / 100:.2f} mmol/L", "albumin": f"{alb / 10:.1f} g/L"}
        for ca in range(190, 275, 2)
        for alb in range(250, 400, 7)
    ]
    panels += [
        {"sodium": f"{na} mmol/L", "glucose": f"{glucose} mg/dL"}
        for na in range(118, 150)
        for glucose in range(200, 900, 13)
    ]
    wrong = []
    for compact in panels:
        result = interpreter.interpret(expand(compact))
        wrong += [(compact, c) for s in statements(result) for c in contradictions(s)]
    assert wrong == []


def test_a_missing_calcium_is_named_as_any_missing_result(interpreter):
    """'Calcium: not measured', as for glucose or magnesium (not 'Calcium: no calcium result')."""
    result = interpreter.interpret({"results": [{"analyte": "potassium", "value": 4.0, "unit": "mmol/L"}]})
    missing = {item.code: item.missing for item in result.not_assessed}
    assert missing["hypocalcemia"] == ["Calcium: not measured"]
    assert missing["hypoglycemia"] == ["Glucose: not measured"]


def _critical_notes(interpreter, compact):
    from interpret.compact import expand

    return {f.code: f.critical_note for f in interpreter.interpret(expand(compact)).findings}


def test_critical_wording_only_where_a_value_is_beyond_a_critical_limit(interpreter):
    """Digoxin with K 3.2 and Mg 0.65 is critical by combination: no value is beyond a limit,
    so the report must not send the clinician to the laboratory about it."""
    notes = _critical_notes(
        interpreter, {"potassium": "3.2 mmol/L", "magnesium": "0.65 mmol/L", "medications": ["digoxin"]}
    )
    assert "digoxin_electrolyte_risk" in notes and notes["digoxin_electrolyte_risk"] is None
    notes = _critical_notes(
        interpreter, {"potassium": "2.2 mmol/L", "magnesium": "0.65 mmol/L", "medications": ["digoxin"]}
    )
    assert "critical limit" in notes["digoxin_electrolyte_risk"]
    assert "critical limit" in notes["hypokalemia"]


def test_a_data_quality_finding_comes_first_and_qualifies_what_it_puts_in_doubt(interpreter):
    """The EDTA triad was listed last, under three critical findings, one recommending to
    correct magnesium for what is probably an artefact."""
    from interpret.compact import expand

    result = interpreter.interpret(expand({"potassium": "7.2 mmol/L", "calcium": "1.2 mmol/L"}))
    assert result.findings[0].code == "possible_edta_contamination"
    by_code = {f.code: f for f in result.findings}
    assert "K-EDTA contamination" in by_code["hyperkalemia"].caveat
    assert "K-EDTA contamination" in by_code["hypocalcemia"].caveat
    assert by_code["possible_edta_contamination"].caveat is None
    text = interpreter.interpret(expand({"potassium": "4.0 mmol/L"})).findings
    assert all(f.caveat is None for f in text)
