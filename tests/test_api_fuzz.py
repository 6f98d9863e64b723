"""Schema-driven fuzzing: requests generated from /openapi.json never get a 5xx, and every answer fits the schema."""

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from tests.support.admin import ADMIN_TOKEN
from tests.support.customers import token_for


@pytest.fixture
def api_schema(api_url, catalog):
    # The tokens as the schema's own security schemes, so negative cases without them are still generated.
    # The payment webhook's signature covers each body: generated requests to confirm get 401 (never a 5xx).
    config = schemathesis.Config.from_dict(
        {
            "auth": {
                "openapi": {
                    "AdminToken": {"bearer": ADMIN_TOKEN},
                    "CustomerToken": {"bearer": token_for("fuzzer", ttl_seconds=3600)},
                }
            }
        }
    )
    return schemathesis.openapi.from_url(f"{api_url}/openapi.json", config=config)


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
def test_generated_requests_never_get_a_server_error(case):
    case.call_and_validate(
        checks=[
            not_a_server_error,
            status_code_conformance,
            content_type_conformance,
            response_schema_conformance,
            negative_data_rejection,
        ]
    )
