"""Matching free-text medication entries to the catalogue in `rules/medications.yaml`.

Clinicians write "Lasix 40mg PO daily", "KCl 20 mEq BID" or "Losartan Potassium 50 mg".
We split the text into words, find the longest catalogue name at each position, and let salt
words that follow a matched drug belong to it, so "Losartan Potassium" is an ARB and not a
potassium supplement. Anything that matches nothing is returned unrecognised, never dropped.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the ruleset loader imports this module: no import back at run time
    from interpret.ruleset.schema import DrugDef, LocalForms, MedicationsFile

_SPLIT = re.compile(r"[a-z]+|\d+(?:\.\d+)?")


def words(text: str) -> tuple[str, ...]:
    """Lower-case words and numbers; punctuation and spacing are ignored."""
    return tuple(_SPLIT.findall(text.casefold()))


@dataclass(frozen=True)
class MatchedDrug:
    name: str
    classes: frozenset[str]


@dataclass(frozen=True)
class MedicationMatch:
    text: str
    drugs: tuple[MatchedDrug, ...]
    classes: frozenset[str] = frozenset()

    @classmethod
    def of(cls, text: str, drugs: tuple[MatchedDrug, ...]) -> MedicationMatch:
        return cls(text, drugs, frozenset().union(*(d.classes for d in drugs)))

    @property
    def recognized(self) -> bool:
        return bool(self.drugs)


class CatalogueError(ValueError):
    pass


# The class of entries that are no drug ("Bag", "Vial", "Soln": order-set items); beside a drug
# in the same entry such a word is that drug's container, not a second entry.
NOT_A_MEDICATION = frozenset({"not_a_medication"})


def _names_any(tokens: tuple[str, ...], phrases: tuple[tuple[str, ...], ...]) -> bool:
    """Whether the entry's words contain one of the phrases (runs of whole words): an eye,
    ear or skin preparation (`local_forms`: ciprofloxacin eye drops are no QT-prolonging drug),
    or an entry written as not current (`not_current`: "held", "discontinued")."""
    return any(
        tokens[i : i + len(phrase)] == phrase for phrase in phrases for i in range(len(tokens) - len(phrase) + 1)
    )


class MedicationCatalogue:
    """An index of every name, brand and synonym, built once per ruleset."""

    def __init__(self, data: MedicationsFile, clinical_drugs: dict[str, str] | None = None) -> None:
        self.data = data
        # RxNorm clinical-drug codes (rxnorm.yaml) with their names: such a code is read as
        # its name, so a combination tablet gives each of its ingredients
        self.clinical_drugs = clinical_drugs or {}
        self.salts = frozenset(words(" ".join(data.salt_words)))
        by_name = {d.name: d for d in data.drugs}
        self.drugs: dict[str, MatchedDrug] = {
            d.name: MatchedDrug(d.name, self._classes(d, by_name, ())) for d in data.drugs
        }
        self._index: dict[str, list[tuple[tuple[str, ...], MatchedDrug]]] = {}
        owner: dict[tuple[str, ...], str] = {}
        for d in data.drugs:
            for spelling in (d.name, *d.brands, *d.synonyms):
                key = words(spelling)
                if not key:
                    raise CatalogueError(f"drug {d.name!r}: {spelling!r} has no words")
                if owner.get(key, d.name) != d.name:
                    raise CatalogueError(f"drug {d.name!r}: {spelling!r} is also a name of {owner[key]!r}")
                owner[key] = d.name
                self._index.setdefault(key[0], []).append((key, self.drugs[d.name]))
        for entries in self._index.values():
            entries.sort(key=lambda e: -len(e[0]))
        self._rxnorm = {code: self.drugs[d.name] for d in data.drugs for code in d.rxnorm}
        # Words that change what an entry's drugs are taken as, first match wins: an entry
        # written as not current ("furosemide (discontinued)") before a local preparation.
        overrides = (("not_current", data.not_current), ("local_forms", data.local_forms))
        self._overrides = [o for name, forms in overrides if (o := self._override(name, forms, data)) is not None]
        self._cache: dict[tuple[str, str | None], MedicationMatch] = {}  # (text with its route, code)
        self._spellings: dict[str, str] | None = None  # built when a suggestion is first asked for

    @staticmethod
    def _override(
        name: str, forms: LocalForms | None, data: MedicationsFile
    ) -> tuple[tuple[tuple[str, ...], ...], frozenset[str]] | None:
        if forms is None:
            return None
        phrases = tuple(words(w) for w in forms.words)
        if not all(phrases):
            raise CatalogueError(f"{name}: {forms.words!r} has an entry without words")
        if forms.becomes not in data.classes:
            raise CatalogueError(f"{name}: unknown class {forms.becomes!r}")
        return phrases, frozenset({forms.becomes})

    def _classes(self, drug: DrugDef, by_name: dict[str, DrugDef], seen: tuple[str, ...]) -> frozenset[str]:
        if drug.name in seen:
            raise CatalogueError(f"drug {drug.name!r}: ingredients refer back to themselves")
        classes = set(drug.classes)
        for ingredient in drug.ingredients:
            if ingredient not in by_name:
                raise CatalogueError(f"drug {drug.name!r}: unknown ingredient {ingredient!r}")
            classes |= self._classes(by_name[ingredient], by_name, (*seen, drug.name))
        unknown = classes - set(self.data.classes)
        if unknown:
            raise CatalogueError(f"drug {drug.name!r}: unknown classes {sorted(unknown)}")
        if not classes:
            raise CatalogueError(f"drug {drug.name!r}: has neither classes nor ingredients")
        return frozenset(classes)

    def suggestion(self, text: str) -> str | None:
        """The catalogue name closest to a misspelt word of an unrecognised entry ("furosemde"
        -> furosemide), by difflib's ratio (at least 0.85, words of 5 letters or more); only
        ever shown as a question, never used as a match."""
        if self._spellings is None:
            self._spellings = {" ".join(key): d.name for entries in self._index.values() for key, d in entries}
        for word in words(text):
            if len(word) >= 5 and not word.isdigit():
                close = difflib.get_close_matches(word, self._spellings, n=1, cutoff=0.85)
                if close:
                    return self._spellings[close[0]]
        return None

    def match(self, text: str, rxnorm: str | None = None, route: str | None = None) -> MedicationMatch:
        """An entry as written, with its RxNorm code and its route when the sender has them
        apart (FHIR's dosageInstruction.route): the route's words count with the text's for
        local forms ("Ophthalmic route") and is shown beside the text."""
        if route and route.casefold() not in text.casefold():
            text = f"{text} ({route})"
        key = (text, rxnorm)
        found = self._cache.get(key)
        if found is None:
            found = self._match(text, rxnorm)
            if len(self._cache) < 200_000:
                self._cache[key] = found
        return found

    def _match(self, text: str, rxnorm: str | None) -> MedicationMatch:
        """By the RxNorm code when it is an ingredient's; by the code's RxNorm name when it is
        a clinical drug's (with the text's words for the route and the status); else by the
        text."""
        tokens = words(text)
        code = rxnorm.strip() if rxnorm else ""
        drugs: tuple[MatchedDrug, ...] = ()
        if code in self._rxnorm:
            drugs = (self._rxnorm[code],)
        elif code in self.clinical_drugs:
            named = words(self.clinical_drugs[code])
            drugs = self._drugs_in(named)
            tokens = (*named, *tokens)
        drugs = drugs or self._drugs_in(tokens)
        if len(drugs) > 1 and any(d.classes == NOT_A_MEDICATION for d in drugs):
            # "Albuterol Neb Soln", "KCl 20 mEq Bag": the vehicle belongs to the drug beside it
            drugs = tuple(d for d in drugs if d.classes != NOT_A_MEDICATION) or drugs
        for phrases, becomes in self._overrides if drugs else ():
            if _names_any(tokens, phrases):
                drugs = tuple(dict.fromkeys(MatchedDrug(d.name, becomes) for d in drugs))
                break
        return MedicationMatch.of(text, drugs)

    def _drugs_in(self, tokens: tuple[str, ...]) -> tuple[MatchedDrug, ...]:
        found: list[MatchedDrug] = []
        i = 0
        while i < len(tokens):
            hit = self._longest_at(tokens, i)
            if hit is None:
                i += 1
                continue
            length, drug = hit
            if drug not in found:
                found.append(drug)
            i += length
            while i < len(tokens) and tokens[i] in self.salts:
                i += 1
        return tuple(found)

    def _longest_at(self, tokens: tuple[str, ...], i: int) -> tuple[int, MatchedDrug] | None:
        for key, drug in self._index.get(tokens[i], ()):
            if tokens[i : i + len(key)] == key:
                return len(key), drug
        return None
