"""rules/rxnorm.yaml: RxNorm clinical-drug codes read by their RxNorm names. The file states
its coverage (codes per source, catalogue drugs no code reaches); these tests check that what
it states is true, and that a code gives the drugs and classes a pharmacist would expect."""

from __future__ import annotations

import pytest

from interpret.ruleset import load_ruleset


@pytest.fixture(scope="module")
def ruleset():
    return load_ruleset()


def classes(ruleset, code: str) -> set[str]:
    return set(ruleset.medications.match(f"RxNorm {code}", code).classes)


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("197770", {"thiazide_diuretic"}),  # Hydrochlorothiazide 50 MG Oral Tablet
        ("202991", {"loop_diuretic"}),  # Lasix (brand name)
        # Hydrochlorothiazide 25 MG / Spironolactone 25 MG Oral Tablet [Aldactazide]: both ingredients
        ("208112", {"thiazide_diuretic", "mineralocorticoid_antagonist"}),
        ("370383", {"local_preparation"}),  # Diclofenac Topical Gel: not a systemic NSAID
        ("106992", {"local_preparation"}),  # prednisolone Ophthalmic Solution
    ],
)
def test_clinical_drug_codes_give_their_ingredients_classes(ruleset, code, expected):
    assert classes(ruleset, code) == expected


def test_an_ingredient_code_still_wins_and_an_unknown_code_falls_back_to_the_text(ruleset):
    assert classes(ruleset, "4603") == {"loop_diuretic"}
    assert not ruleset.medications.match("RxNorm 99999999", "99999999").recognized
    assert classes(ruleset, "99999999") == set()
    assert set(ruleset.medications.match("furosemide 40 mg", "99999999").classes) == {"loop_diuretic"}


def test_a_clinical_drug_code_keeps_the_entrys_own_words(ruleset):
    """The code names the drug; the entry's text can still say it is not taken now."""
    match = ruleset.medications.match("held", "197770")
    assert match.recognized and "thiazide_diuretic" not in match.classes


def test_every_code_names_a_catalogue_drug_and_the_counts_are_as_stated(ruleset):
    table = ruleset.rxnorm
    for source, codes in table.clinical_drugs.items():
        assert table.sources[source].codes == len(codes), source
        for code, name in codes.items():
            assert code.isdigit(), code
            assert ruleset.medications.match(name).recognized, (code, name)


def test_the_drugs_without_codes_are_exactly_those_no_code_reaches(ruleset):
    """An independent count: the drugs each code's name matches, combinations through their
    ingredients, against the file's own list."""
    catalogue = ruleset.medications
    reached = {
        d.name
        for codes in ruleset.rxnorm.clinical_drugs.values()
        for n in codes.values()
        for d in catalogue.match(n).drugs
    }
    unreached = [
        d.name
        for d in catalogue.data.drugs
        if d.name not in reached and not (d.ingredients and set(d.ingredients) <= reached)
    ]
    assert ruleset.rxnorm.drugs_without_codes == unreached
