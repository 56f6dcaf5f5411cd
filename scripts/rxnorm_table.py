"""Write `rules/rxnorm.yaml`: RxNorm clinical-drug codes (SCD, SBD, packs, brand names) with
their RxNorm names, taken from public FHIR material, for the catalogue to read by name.

EHR orders carry the code of a clinical drug ("Hydrochlorothiazide 50 MG Oral Tablet", 197770),
not of its ingredient. RxNav, which would map every code, is not reachable from the build
machines, so the table is built from public files that pair a code with its RxNorm name:

- HL7 PDDI-CDS (CC0): the implementation guide's value sets, `input/vocabulary/valueset-*.xml`
  (loop diuretics, aldosterone antagonists, PPIs, NSAIDs, corticosteroids, digoxin, ...);
- smart-on-fhir/generated-sample-data (Apache-2.0): the SMART and Synthea sample patients'
  MedicationRequests and MedicationStatements, every FHIR version;
- HL7 US-Core (CC0): `input/examples/`.

Only codes whose name names at least one catalogue drug are kept; a code whose sources give
names that name different drugs is left out and listed. The catalogue drugs that no code
reaches are listed too, so that the gap is stated rather than discovered.

    python scripts/rxnorm_table.py PDDI_GIT SAMPLE_DATA_GIT US_CORE_GIT > rules/rxnorm.yaml

Each argument is a git directory (a bare clone is enough); the commit read is written into
the file. Re-run it when `rules/medications.yaml` gains a drug.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from interpret.ruleset import load_ruleset

RXNORM = "rxnorm"
XML_CODING = re.compile(
    r'<system value="http://www.nlm.nih.gov/research/umls/rxnorm"\s*/>\s*<code value="(\d+)"\s*/>'
    r'\s*<display value="([^"]+)"'
)
VALUESET_CONCEPT = re.compile(r'<code value="(\d+)"\s*/>\s*<display value="([^"]+)"')

SOURCES = {
    "pddi": (
        "HL7/PDDI-CDS",
        "input/vocabulary/valueset-*.xml",
        "CC0 1.0",
        "HL7 Potential Drug-Drug Interaction CDS implementation guide, value sets",
    ),
    "sample_patients": (
        "smart-on-fhir/generated-sample-data",
        "DSTU-2/, STU-3/, R4/ (SMART and Synthea sample patients)",
        "Apache-2.0",
        "SMART on FHIR sample patients (Boston Children's Hospital)",
    ),
    "us_core": ("HL7/US-Core", "input/examples/", "CC0 1.0", "HL7 US Core implementation guide, examples"),
}


def git(repo: str, *args: str) -> bytes:
    return subprocess.run(["git", "-C", repo, *args], capture_output=True, check=True).stdout


def codings(node: object, found: list[tuple[str, str]]) -> None:
    """Every RxNorm coding with a display in a FHIR JSON resource or bundle."""
    if isinstance(node, dict):
        if RXNORM in str(node.get("system", "")).lower() and node.get("code") and node.get("display"):
            found.append((str(node["code"]), str(node["display"])))
        for value in node.values():
            codings(value, found)
    elif isinstance(node, list):
        for value in node:
            codings(value, found)


def read_source(source: str, repo: str) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    for path in git(repo, "ls-tree", "-r", "--name-only", "HEAD").decode().splitlines():
        if source == "pddi" and not (path.startswith("input/vocabulary/valueset-") and path.endswith(".xml")):
            continue
        if source == "us_core" and not path.startswith("input/examples/"):
            continue
        if not path.endswith((".json", ".xml")):
            continue
        try:
            text = git(repo, "show", f"HEAD:{path}").decode("utf-8", "replace")
        except subprocess.CalledProcessError:  # a snapshot may list its largest files without them
            continue
        if RXNORM not in text:
            continue
        if source == "pddi":
            found.extend(VALUESET_CONCEPT.findall(text))
        elif path.endswith(".xml"):
            found.extend(XML_CODING.findall(text))
        else:
            try:
                codings(json.loads(text), found)
            except json.JSONDecodeError:
                continue
    return found


def main(pddi: str, sample_patients: str, us_core: str) -> None:
    catalogue = load_ruleset().medications
    repos = {"pddi": pddi, "sample_patients": sample_patients, "us_core": us_core}
    names: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))  # code -> source -> names
    for source, repo in repos.items():
        for code, name in read_source(source, repo):
            names[code][source].add(" ".join(name.split()))
    table: dict[str, dict[str, str]] = {s: {} for s in SOURCES}
    ambiguous: list[str] = []
    reached: set[str] = set()
    for code in sorted(names, key=int):
        by_source = names[code]
        all_names = sorted(set().union(*by_source.values()))
        drug_sets = {frozenset(d.name for d in catalogue.match(n).drugs) for n in all_names}
        drugs = next(iter(drug_sets))
        if not drugs or all(catalogue.drugs[d].classes == {"not_a_medication"} for d in drugs):
            continue
        if len(drug_sets) > 1:
            ambiguous.append(code)
            continue
        source = next(s for s in SOURCES if s in by_source)
        table[source][code] = sorted(by_source[source])[0]
        reached |= drugs
    # a combination entry ("lisinopril/hydrochlorothiazide") is reached through its ingredients
    missing = [
        d.name
        for d in catalogue.data.drugs
        if d.name not in reached and not (d.ingredients and set(d.ingredients) <= reached)
    ]
    write(repos, table, ambiguous, missing)


def write(repos: dict[str, str], table: dict[str, dict[str, str]], ambiguous: list[str], missing: list[str]) -> None:
    out = sys.stdout
    out.write(
        "# RxNorm clinical-drug codes (SCD, SBD, packs, brand names) with their RxNorm names.\n"
        "# Generated by scripts/rxnorm_table.py: do not edit by hand; re-run it when\n"
        "# medications.yaml gains a drug. A code here is read as its name, so the catalogue's\n"
        "# names, brands, salts and local forms decide its drugs and classes (a combination\n"
        "# tablet gives each ingredient). A code in none of these lists and in no drug's\n"
        "# `rxnorm` ingredient list is reported as an unrecognised medication.\n"
        "sources:\n"
    )
    for source, (repository, paths, licence, title) in SOURCES.items():
        commit = git(repos[source], "rev-parse", "HEAD").decode().strip()
        out.write(
            f"  {source}:\n    title: {json.dumps(title)}\n    repository: {repository}\n"
            f"    paths: {json.dumps(paths)}\n    commit: {commit}\n    licence: {licence}\n"
            f"    codes: {len(table[source])}\n"
        )
    out.write(
        "# Codes whose sources give names of different drugs: left out, so read as unrecognised.\n"
        f"ambiguous_codes: {json.dumps(ambiguous)}\n"
        "# Catalogue drugs that no code in this file reaches: a clinical-drug code of one of them\n"
        "# is read as unrecognised (its text, when sent, is still matched by name).\n"
        f"drugs_without_codes: {json.dumps(missing)}\n"
        "clinical_drugs:\n"
    )
    for source, codes in table.items():
        out.write(f"  {source}:\n")
        for code, name in codes.items():
            out.write(f'    "{code}": {json.dumps(name)}\n')


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    main(*sys.argv[1:])
