"""Realistic generated panels, seeded, shared by the benchmarks."""

from __future__ import annotations

import random
from typing import Any

MEDICATIONS = [
    "furosemide 40 mg PO daily",
    "Lasix 20mg",
    "hydrochlorothiazide 25 mg",
    "spironolactone 25 mg",
    "lisinopril 10 mg",
    "losartan potassium 50 mg",
    "Entresto 49/51",
    "Bactrim DS 1 tab BID",
    "heparin 5000 units SC",
    "tacrolimus 2 mg BID",
    "ibuprofen 400 mg",
    "KCl 20 mEq BID",
    "omeprazole 20 mg",
    "pantoprazole 40 mg",
    "digoxin 125 mcg",
    "Mag-Ox 400",
    "insulin glargine",
    "albuterol neb",
    "prednisone 10 mg",
    "sertraline 50 mg",
    "amiodarone 200 mg",
    "ondansetron 4 mg",
    "acetaminophen 1 g",
    "metoprolol 25 mg",
    "atorvastatin 40 mg",
    "apixaban 5 mg",
]


def panel(rng: random.Random) -> dict[str, Any]:
    results = [
        {"analyte": "potassium", "value": round(rng.gauss(4.1, 0.6), 1), "unit": "mmol/L"},
        {"analyte": "sodium", "value": round(rng.gauss(138, 4)), "unit": "mmol/L"},
        {"analyte": "creatinine", "value": round(rng.lognormvariate(4.5, 0.45)), "unit": "umol/L"},
    ]
    if rng.random() < 0.8:
        results.append({"analyte": "magnesium", "value": round(rng.gauss(2.0, 0.3), 1), "unit": "mg/dL"})
    if rng.random() < 0.7:
        results.append({"analyte": "calcium", "value": round(rng.gauss(9.2, 0.6), 1), "unit": "mg/dL"})
    if rng.random() < 0.3:
        results.append({"analyte": "albumin", "value": round(rng.gauss(3.6, 0.5), 1), "unit": "g/dL"})
    if rng.random() < 0.7:
        results.append({"analyte": "glucose", "value": round(rng.lognormvariate(4.8, 0.3)), "unit": "mg/dL"})
    for r in results:
        r["value"] = max(r["value"], 0.6)
    return {
        "patient": {"age": rng.randint(18, 95), "sex": rng.choice(["female", "male"])},
        "results": results,
        "medications": rng.sample(MEDICATIONS, rng.randint(0, 6)),
        "specimen": {"hemolyzed": rng.random() < 0.03},
    }


def panels(n: int, seed: int = 2026) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    return [panel(rng) for _ in range(n)]
