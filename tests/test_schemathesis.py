"""Property-based API tests from our own OpenAPI: no 5xx, responses match the schema, and
schema-valid panels are accepted.

The document describes what the ruleset accepts (analytes and LOINC codes, each analyte's
units, plausible values per unit: interpret/web/openapi.py), so the "positive data accepted"
check runs on the interpret endpoint too. Two refusals cannot be written in JSON Schema and
are filtered out of the positive test, exactly those two: the same analyte twice with different
values, and a reference range whose low is above its high.

The API is deliberately more lenient than the document (unit spellings in any case, `"F"` for
female, a value at a plausibility limit itself, 0/1 for a boolean): the document promises what
is accepted, not everything that is, so "schema-violating data rejected" is not checked.
"""

from __future__ import annotations

import math

import schemathesis
from hypothesis import HealthCheck, assume, settings
from schemathesis.specs.openapi.checks import negative_data_rejection, positive_data_acceptance

from interpret.pipeline import default_interpreter
from interpret.web.app import create_app

INTERPRETER = default_interpreter()
schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(INTERPRETER))


@schema.parametrize()
@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_conforms_to_its_schema(case):
    case.call_and_validate(excluded_checks=[positive_data_acceptance, negative_data_rejection])


def _expressible(body: object) -> bool:
    """False for the two refusals JSON Schema cannot express (see the module's docstring), in
    the current results and in each earlier specimen's."""
    if not isinstance(body, dict) or not isinstance(body.get("results"), list):
        return True
    history = body.get("history") if isinstance(body.get("history"), list) else []
    specimens = [body["results"], *(h.get("results") for h in history if isinstance(h, dict))]
    return all(_expressible_results(r) for r in specimens if isinstance(r, list))


def _expressible_results(results: list) -> bool:
    rs = INTERPRETER.ruleset
    seen: dict[str, float] = {}
    for result in results:
        if not isinstance(result, dict):
            continue
        analyte = rs.analyte(str(result.get("analyte")))
        unit = rs.units.resolve(str(result.get("unit")))
        value = result.get("value")
        if analyte is None or unit is None or not isinstance(value, int | float):
            continue
        canonical = value * rs.units.factor(analyte, unit)
        if analyte in seen and not math.isclose(seen[analyte], canonical, rel_tol=1e-9):
            return False
        seen[analyte] = canonical
        rr = result.get("reference_range")
        rr = rr if isinstance(rr, dict) else {}
        low, high = rr.get("low"), rr.get("high")
        if isinstance(low, int | float) and isinstance(high, int | float) and low > high:
            return False
    return True


@schema.include(path="/api/v1/interpret", method="POST").parametrize()
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
def test_schema_valid_panels_are_accepted(case):
    assume(_expressible(case.body))
    case.call_and_validate(excluded_checks=[negative_data_rejection])
