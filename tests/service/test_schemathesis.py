"""Property-based fuzzing of the whole OpenAPI spec against the real server: no input gives a 5xx."""

from typing import Any

import hypothesis
import schemathesis
from schemathesis.checks import not_a_server_error

from tests.service.conftest import CLIENT_TIMEOUT_S, TOKEN

EXAMPLES_PER_OPERATION = 25


def exercise(operation: Any) -> int:
    """Call one operation with its generated examples; how many calls were made."""
    calls = 0

    @hypothesis.given(case=operation.as_strategy())
    @hypothesis.settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, database=None,
                         suppress_health_check=list(hypothesis.HealthCheck), derandomize=True)
    def call(case):
        nonlocal calls
        # Authorised, so writes reach validation and the engine rather than stopping at the 401.
        case.call_and_validate(headers={"Authorization": f"Bearer {TOKEN}"}, checks=[not_a_server_error],
                               timeout=CLIENT_TIMEOUT_S)
        calls += 1

    call()
    return calls


def test_no_input_makes_the_server_fail(server):
    schema = schemathesis.openapi.from_url(server.url + "/openapi.json")
    schema.config.update(base_url=server.url)
    operations = [result.ok() for result in schema.get_all_operations()]
    calls = {operation.label: exercise(operation) for operation in operations}
    print(f"schemathesis: {sum(calls.values())} calls over {len(calls)} operations, no 5xx")
    assert len(calls) == len(operations) >= 8
    assert sum(calls.values()) >= 6 * EXAMPLES_PER_OPERATION
