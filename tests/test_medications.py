"""Medication matching, including the traps found in the MIMIC-IV demo export."""

from __future__ import annotations

import pytest

from interpret.ruleset import default_ruleset

CATALOGUE = default_ruleset().medications


@pytest.mark.parametrize(
    ("text", "classes"),
    [
        ("furosemide 40 mg PO daily", {"loop_diuretic"}),
        ("Lasix 40mg", {"loop_diuretic"}),
        ("Furosemide-Heart Failure", {"loop_diuretic"}),
        ("KCl 20 mEq BID", {"potassium_supplement"}),
        ("Klor-Con", {"potassium_supplement"}),
        ("Potassium Chl 20 mEq / 1000 mL D5 1/2 NS", {"potassium_supplement", "no_rule_applies"}),
        ("Potassium Chloride Replacement (Critical Care and Oncology) ", {"potassium_supplement"}),
        ("Potassium Phosphate", {"potassium_supplement"}),
        ("Neutra-Phos", {"potassium_supplement"}),  # potassium and sodium phosphates (MIMIC-IV demo)
        ("Losartan Potassium", {"arb"}),
        ("Esomeprazole sodium", {"ppi"}),
        ("Nexium 40 mg (esomeprazole magnesium)", {"ppi"}),
        ("Lansoprazole Oral Disintegrating Tab", {"ppi"}),
        ("Magnesium Citrate", {"magnesium_containing"}),
        ("Magnesium Sulfate", {"magnesium_containing"}),
        ("Aluminum-Magnesium Hydrox.-Simethicone", {"magnesium_containing"}),
        ("Chlorothiazide Sodium", {"thiazide_diuretic"}),
        ("Bactrim DS 1 tab BID", {"trimethoprim"}),
        ("co-trimoxazole 960 mg", {"trimethoprim"}),
        ("Dyazide", {"potassium_sparing_diuretic", "thiazide_diuretic"}),
        ("Hyzaar 50/12.5", {"arb", "thiazide_diuretic"}),
        ("Entresto 24/26 mg", {"arni"}),
        ("Heparin Flush (10 units/ml)", {"no_rule_applies"}),
        ("Heparin 5000 UNIT SC TID", {"heparin"}),
        ("citalopram 20 mg", {"ssri_snri", "qt_prolonging"}),
        ("Sodium Chloride 0.9%  Flush", {"no_rule_applies"}),
        ("zzqx 5 mg", set()),
    ],
)
def test_classes_of_free_text(text, classes):
    assert set(CATALOGUE.match(text).classes) == classes


def test_rxnorm_ingredient_code_wins_over_the_name():
    match = CATALOGUE.match("water pill", rxnorm="4603")
    assert [d.name for d in match.drugs] == ["furosemide"]


def test_unknown_rxnorm_code_falls_back_to_the_name():
    assert CATALOGUE.match("spironolactone 25 mg", rxnorm="999999999").classes == {"mineralocorticoid_antagonist"}


def test_unrecognised_entries_are_kept_and_reported(interpreter):
    result = interpreter.interpret(
        {
            "results": [{"analyte": "potassium", "value": 4, "unit": "mmol/L"}],
            "medications": ["zzqx 5 mg", "Lasix"],
        }
    )
    assert [m.text for m in result.medications] == ["zzqx 5 mg", "Lasix"]
    assert [m.recognized for m in result.medications] == [False, True]
    assert any(f.code == "unrecognized_medication" and "zzqx" in f.message for f in result.findings)
