"""Property-based API tests from our own OpenAPI: no 5xx, responses match the schema.

Schema-valid bodies may still be refused (422): the schema cannot say that 45 mmol/L of
potassium is implausible or that 'furlongs' is no unit, so the "positive data accepted" check
is the one check left out; its refusals are located errors, which the API tests cover.
"""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from interpret.pipeline import default_interpreter
from interpret.web.app import create_app

schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(default_interpreter()))


@schema.parametrize()
@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_conforms_to_its_schema(case):
    case.call_and_validate(excluded_checks=[positive_data_acceptance])
