"""Schemathesis against the API's own OpenAPI schema, with a tenant key and an admin key:
whatever it sends, no response is a 5xx and every status is one the schema documents.

Bounded and deterministic: a fixed number of derandomized examples per operation.
"""

from collections import Counter
from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import APIOperation, GenerationMode
from schemathesis.checks import not_a_server_error, status_code_conformance
from sqlalchemy import Engine

from infra.db import make_sessions
from producers import Producer
from producers.api import create_app
from store.admin_keys import create_admin_key
from store.tenants import NewTenant

EXAMPLES_PER_OPERATION = 20  # per operation and generation mode (valid, invalid)


@pytest.fixture
def api_schema(producer: Producer) -> Iterator[schemathesis.BaseSchema]:
    # Any name resolves to a public address, so generated webhook URLs reach the checks
    # after the SSRF guard; nothing is sent, since no worker runs here.
    producer.webhooks.resolve = lambda host, port: ["93.184.216.34"]
    yield schemathesis.openapi.from_asgi("/openapi.json", create_app(producer))


@pytest.fixture
def keys(engine: Engine, tenant: NewTenant) -> dict[str, str]:
    with make_sessions(engine).begin() as session:
        admin = create_admin_key(session, "schemathesis")
    return {"/v1": tenant.api_key, "/admin": admin.key}


def test_no_5xx_and_every_status_is_documented(api_schema, keys: dict[str, str]) -> None:
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) > 20

    statuses: Counter[int] = Counter()
    failures = []
    for operation in operations:
        key = next((k for prefix, k in keys.items() if operation.path.startswith(prefix)), None)
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        # Invalid input exists only where there is a body or a typed query to break.
        typed = len(operation.body) > 0 or len(operation.query) > 0
        for mode in GenerationMode if typed else [GenerationMode.POSITIVE]:
            try:
                explore(operation, mode, headers, statuses)
            except Unsatisfiable:  # every parameter accepts any string
                continue
            except Exception as exc:
                failures.append(f"{operation.label} ({mode.value}): {exc}")

    print(
        f"schemathesis: {len(operations)} operations, {statuses.total()} calls, "
        f"statuses {dict(sorted(statuses.items()))}, {len(failures)} failures"
    )
    assert not failures, "\n\n".join(failures)
    assert not any(status >= 500 for status in statuses)


def explore(
    operation: APIOperation, mode: GenerationMode, headers: dict[str, str], seen: Counter[int]
) -> None:
    """A bounded, derandomized run of one operation; raises on the first failed check."""

    @given(case=operation.as_strategy(mode))
    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        derandomize=True,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def examples(case: schemathesis.Case) -> None:
        response = case.call_and_validate(
            headers=headers, checks=[not_a_server_error, status_code_conformance]
        )
        seen[response.status_code] += 1

    examples()
