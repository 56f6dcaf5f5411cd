"""Hypothesis strategies for panels: valid, borderline and invalid values, all units."""

from __future__ import annotations

from hypothesis import strategies as st

# value ranges in the given unit, wide enough to reach every threshold and some refusals
RANGES = {
    "potassium": [("mmol/L", 0.3, 16.0), ("mEq/L", 1.5, 9.5)],
    "sodium": [("mmol/L", 95.0, 190.0), ("mEq/L", 110.0, 160.0)],
    "magnesium": [("mmol/L", 0.2, 2.5), ("mg/dL", 0.5, 6.0), ("mEq/L", 0.5, 4.0)],
    "calcium": [("mmol/L", 1.0, 3.8), ("mg/dL", 5.0, 15.0)],
    "ionized_calcium": [("mmol/L", 0.5, 2.0), ("mg/dL", 2.5, 7.5)],
    "albumin": [("g/L", 10.0, 60.0), ("g/dL", 1.0, 6.0)],
    "glucose": [("mmol/L", 1.5, 45.0), ("mg/dL", 30.0, 900.0)],
    "creatinine": [("umol/L", 30.0, 1200.0), ("mg/dL", 0.3, 12.0)],
    "egfr": [("mL/min/1.73m2", 5.0, 130.0)],
    "bicarbonate": [("mmol/L", 4.0, 55.0), ("mEq/L", 8.0, 45.0)],
    "chloride": [("mmol/L", 80.0, 125.0), ("mEq/L", 90.0, 115.0)],
    "bun": [("mg/dL", 3.0, 120.0)],
    "urea": [("mmol/L", 1.0, 40.0)],
    "phosphate": [("mg/dL", 0.5, 12.0), ("mmol/L", 0.2, 3.5)],
}
MEDICATIONS = [
    "furosemide 40 mg",
    "hydrochlorothiazide",
    "spironolactone",
    "lisinopril",
    "losartan potassium",
    "Entresto",
    "Bactrim DS",
    "heparin",
    "tacrolimus",
    "ibuprofen",
    "KCl 20 mEq",
    "omeprazole",
    "digoxin",
    "Mag-Ox 400",
    "milk of magnesia",
    "gentamicin",
    "insulin glargine",
    "albuterol",
    "prednisone",
    "sertraline",
    "carbamazepine",
    "lithium",
    "amiodarone",
    "ondansetron",
    "acetaminophen",
    "zzqx unknown drug",
    "Ciprofloxacin 0.3% Ophth Soln",  # local: not QT-prolonging
    "Heparin Dwell (1000 Units/mL)",  # a catheter lock: not systemic heparin
]
# thresholds worth hitting exactly (value, unit)
EDGES = {
    "potassium": [
        (2.5, "mmol/L"),
        (3.0, "mmol/L"),
        (3.5, "mmol/L"),
        (5.0, "mmol/L"),
        (6.0, "mmol/L"),
        (6.5, "mmol/L"),
        (9.0, "mmol/L"),
    ],
    "magnesium": [
        (0.4, "mmol/L"),
        (0.5, "mmol/L"),
        (0.7, "mmol/L"),
        (1.7, "mg/dL"),
        (1.2, "mg/dL"),
        (1.0, "mmol/L"),
        (1.5, "mmol/L"),
        (2.0, "mmol/L"),
        (4.9, "mg/dL"),
    ],
    "sodium": [
        (125, "mmol/L"),
        (130, "mmol/L"),
        (135, "mmol/L"),
        (145, "mmol/L"),
        (150, "mmol/L"),
        (155, "mmol/L"),
    ],
    "calcium": [
        (1.75, "mmol/L"),
        (7.0, "mg/dL"),
        (2.15, "mmol/L"),
        (2.55, "mmol/L"),
        (3.0, "mmol/L"),
        (13.0, "mg/dL"),
    ],
    "glucose": [
        (3.9, "mmol/L"),
        (70, "mg/dL"),
        (7.8, "mmol/L"),
        (200, "mg/dL"),
        (11.1, "mmol/L"),
        (25, "mmol/L"),
    ],
    "bicarbonate": [(10, "mmol/L"), (22, "mmol/L"), (29, "mmol/L"), (40, "mmol/L")],
    "phosphate": [(1.0, "mg/dL"), (2.0, "mg/dL"), (2.5, "mg/dL"), (4.5, "mg/dL")],
    "egfr": [
        (15, "mL/min/1.73m2"),
        (30, "mL/min/1.73m2"),
        (45, "mL/min/1.73m2"),
        (60, "mL/min/1.73m2"),
    ],
}


@st.composite
def result(draw, analyte):
    if analyte in EDGES and draw(st.booleans()):
        value, unit = draw(st.sampled_from(EDGES[analyte]))
    else:
        unit, low, high = draw(st.sampled_from(RANGES[analyte]))
        value = round(draw(st.floats(min_value=low, max_value=high)), 2)
    return {"analyte": analyte, "value": value, "unit": unit}


@st.composite
def panels(draw):
    analytes = draw(st.sets(st.sampled_from(list(RANGES)), min_size=1))
    panel = {"results": [draw(result(a)) for a in sorted(analytes)]}
    patient = {}
    if draw(st.booleans()):
        patient["age"] = draw(st.integers(min_value=18, max_value=100))
    if draw(st.booleans()):
        patient["sex"] = draw(st.sampled_from(["female", "male", "other"]))
    if patient:
        panel["patient"] = patient
    if draw(st.booleans()):
        panel["medications"] = draw(st.lists(st.sampled_from(MEDICATIONS), max_size=5))
    if draw(st.booleans()):
        panel["specimen"] = {"hemolyzed": draw(st.booleans())}
    return panel
