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
        ("Aluminum-Magnesium Hydrox.-Simethicone", {"magnesium_containing", "no_rule_applies"}),
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
        # a catheter lock is not systemic anticoagulation (MIMIC-IV demo, 72 specimens)
        ("Heparin Dwell (1000 Units/mL)", {"no_rule_applies"}),
        ("dexamethasone 4 mg IV", {"no_rule_applies"}),  # negligible mineralocorticoid effect
        ("Jardiance 10 mg", {"no_rule_applies"}),
    ],
)
def test_classes_of_free_text(text, classes):
    assert set(CATALOGUE.match(text).classes) == classes


LOCAL = {"local_preparation"}


@pytest.mark.parametrize(
    ("text", "classes"),
    [
        # eye, ear and skin preparations (MIMIC-IV demo spellings): not their systemic classes
        ("PrednisoLONE Acetate 1% Ophth. Susp.", LOCAL),
        ("Ciprofloxacin 0.3% Ophth Soln", LOCAL),
        ("Gentamicin 0.3% Ophth. Soln", LOCAL),
        ("Erythromycin 0.5% Ophth Oint", LOCAL),
        ("Hydrocortisone Cream 2.5%", LOCAL),
        ("Hydrocortisone (Rectal) 2.5% Cream", LOCAL),
        ("ciprofloxacin/dexamethasone otic", LOCAL),
        ("ciprofloxacin ear drops", LOCAL),
        ("ciprofloxacin eye drop", LOCAL),
        ("diclofenac topical 1% gel", LOCAL),
        # the same drugs taken systemically keep their classes
        ("Ciprofloxacin 500 mg PO BID", {"qt_prolonging"}),
        ("Hydrocortisone Na Succ.", {"mineralocorticoid_corticosteroid"}),
        ("Gentamicin 80 mg IV q8h", {"magnesium_wasting_nephrotoxin"}),
        # forms that act systemically are deliberately not local
        ("desmopressin nasal spray", {"desmopressin"}),
        ("Albuterol Inhaler", {"beta2_agonist"}),
        ("Albuterol 0.083% Neb Soln", {"beta2_agonist"}),
        ("Magnesium sulfate enema", {"magnesium_containing"}),
        ("Fentanyl Patch", {"no_rule_applies"}),
        ("Diclofenac Sodium 1% Gel", {"nsaid"}),
        ("Heparin gtt", {"heparin"}),
        # an unknown drug in a cream is still unrecognised, not hidden
        ("Clobetasol Propionate 0.05% Cream", set()),
    ],
)
def test_preparations_for_the_eye_ear_or_skin(text, classes):
    assert set(CATALOGUE.match(text).classes) == classes


def test_a_local_preparation_keeps_its_drug_name():
    match = CATALOGUE.match("Ciprofloxacin 0.3% Ophth Soln")
    assert match.recognized and [d.name for d in match.drugs] == ["ciprofloxacin"]


def test_a_local_form_applies_to_a_drug_named_by_its_rxnorm_code():
    assert CATALOGUE.match("furosemide cream", rxnorm="4603").classes == LOCAL


def test_ciprofloxacin_eye_drops_raise_no_qt_finding(interpreter):
    """Low K with ciprofloxacin: the QT finding is for the tablets, not the eye drops."""

    def codes(medication):
        result = interpreter.interpret(
            {
                "patient": {"age": 70, "sex": "female"},
                "results": [
                    {"analyte": "potassium", "value": 3.1, "unit": "mmol/L"},
                    {"analyte": "magnesium", "value": 0.8, "unit": "mmol/L"},
                ],
                "medications": [medication],
            }
        )
        return {f.code for f in result.findings}

    assert "qt_risk_with_electrolyte_deficit" in codes("ciprofloxacin 500 mg PO BID")
    assert "qt_risk_with_electrolyte_deficit" not in codes("Ciprofloxacin 0.3% Ophth Soln")
    assert "hypokalemia" in codes("Ciprofloxacin 0.3% Ophth Soln")


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


# Clinical review (issue 12, medications): each failed before its entry.
COMBINATIONS = {
    "Benicar HCT 40/25 mg": {"arb", "thiazide_diuretic"},
    "Micardis HCT": {"arb", "thiazide_diuretic"},
    "Atacand HCT 16-12.5": {"arb", "thiazide_diuretic"},
    "Lotensin HCT": {"ace_inhibitor", "thiazide_diuretic"},
    "Avalide": {"arb", "thiazide_diuretic"},
    "Vaseretic": {"ace_inhibitor", "thiazide_diuretic"},
    "Accuretic": {"ace_inhibitor", "thiazide_diuretic"},
    "Exforge HCT": {"arb", "thiazide_diuretic"},
    "Tribenzor": {"arb", "thiazide_diuretic"},
    "DuoNeb neb q6h": {"beta2_agonist"},
    "Combivent Respimat": {"beta2_agonist"},
    "Symbicort 160/4.5": {"beta2_agonist"},
    "Advair Diskus": {"beta2_agonist"},
    "Eskalith 300 mg": {"lithium"},
    "Priadel": {"lithium"},
    "Semglee 20 units": {"insulin"},
    "Mg oxide 400 mg": {"magnesium_containing"},
    "Mag citrate": {"magnesium_containing"},
    "Potassium 20 mEq PO BID": {"potassium_supplement"},
    "fluconazole 200 mg": {"qt_prolonging"},
    "droperidol": {"qt_prolonging"},
    "chlorpromazine 25 mg": {"qt_prolonging"},
    "Calcium Gluconate": {"calcium_or_vitamin_d"},
    "Bag": {"not_a_medication"},
}


@pytest.mark.parametrize(("text", "classes"), COMBINATIONS.items())
def test_real_list_entries_carry_every_ingredients_classes(text, classes):
    match = default_ruleset().medications.match(text)
    assert set().union(*(d.classes for d in match.drugs)) == classes, match


@pytest.mark.parametrize("text", ["furosemide (discontinued)", "Lasix - held", "KCl d/c'd", "furosemide stopped"])
def test_an_entry_written_as_not_current_is_not_taken(text):
    match = default_ruleset().medications.match(text)
    assert match.recognized and all(d.classes == {"not_current"} for d in match.drugs)


def test_a_hold_parameter_is_not_a_stopped_drug():
    match = default_ruleset().medications.match("furosemide 40 mg daily, hold if SBP < 90")
    assert {c for d in match.drugs for c in d.classes} == {"loop_diuretic"}


def test_losartan_potassium_is_still_an_arb_not_a_supplement():
    match = default_ruleset().medications.match("Losartan Potassium 50 mg")
    assert {c for d in match.drugs for c in d.classes} == {"arb"}


def test_a_misspelling_gets_a_question_not_a_match(interpreter):
    result = interpreter.interpret(
        {"results": [{"analyte": "potassium", "value": 3.0, "unit": "mmol/L"}], "medications": ["furosemde 40mg"]}
    )
    codes = {f.code for f in result.findings}
    assert "diuretic_associated_losses" not in codes  # never an automatic match
    unrecognized = next(f for f in result.findings if f.code == "unrecognized_medication")
    assert "did you mean furosemide?" in unrecognized.message


def test_a_route_given_apart_makes_a_local_preparation(interpreter):
    """FHIR sends the route in dosageInstruction, not in the drug's name: `route` says it."""
    panel = {
        "results": [{"analyte": "potassium", "value": 3.1, "unit": "mmol/L"}],
        "medications": [{"name": "ciprofloxacin 0.3% solution", "route": "Ophthalmic route"}],
    }
    _, facts, _ = interpreter.evaluate(panel)
    assert facts.classes is not None and "qt_prolonging" not in facts.classes
    panel["medications"] = [{"name": "ciprofloxacin 500 mg tablet", "route": "Oral route"}]
    _, facts, _ = interpreter.evaluate(panel)
    assert facts.classes is not None and "qt_prolonging" in facts.classes
