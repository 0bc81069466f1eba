"""Property-based API testing from /openapi.json: no 5xx, and every response matches the schema.

Schemathesis generates requests from the app's own schema (valid and
invalid ones) and runs its checks on every answer: not a server error,
documented status code and content type, response body matching its schema,
invalid input rejected.  One check is left out: "schema-valid data is
accepted" cannot hold for uploads, since no schema can say "a decodable
image" (random bytes in `file` are rightly a 415); tests/serve/test_api.py
covers the accepted uploads.  The operations are driven one by one through
hypothesis (schemathesis' lazy pytest loader does not support pytest 9).
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from recog.serve import ServeConfig, create_app

OPERATIONS = [
    ("POST", "/v1/predict"),
    ("POST", "/v1/explain"),
    ("POST", "/v1/attack"),
    ("GET", "/v1/models"),
    ("POST", "/v1/feedback"),
    ("GET", "/v1/history"),
    ("GET", "/healthz"),
    ("GET", "/metrics"),
]


@pytest.fixture(scope="module")
def api_schema(recognizers, tmp_path_factory):
    db = tmp_path_factory.mktemp("schemathesis") / "h.db"
    app = create_app(recognizers, ServeConfig(db_url=f"sqlite:///{db}", warm_up=False))
    return schemathesis.openapi.from_asgi("/openapi.json", app)


def test_every_route_is_in_the_schema(api_schema):
    found = {
        (op.method.upper(), op.path)
        for result in api_schema.get_all_operations()
        if (op := result.ok()) is not None
    }
    assert found == set(OPERATIONS)


@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_operation_conforms_to_its_schema(api_schema, method, path):
    operation = api_schema[path][method]

    @given(case=operation.as_strategy())
    @settings(
        max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True
    )
    def run(case):
        case.call_and_validate(excluded_checks=[positive_data_acceptance])

    run()
