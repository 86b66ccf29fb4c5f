"""Bounded fan-out: a tenant's endpoints are capped (409 past the cap), and test sends per
endpoint are rate limited (429 with Retry-After); a refused request writes and sends
nothing."""

import threading

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from producers.webhook_test_rate import WebhookTestRate
from schema.settings import Settings
from schema.tables import OutboxMessage, WebhookDelivery, WebhookEndpoint, WebhookEvent
from schema.webhooks import EndpointCreate
from store.webhook_endpoints import EndpointLimitError
from tests.conftest import new_tenant
from tests.workers.test_webhooks import add_endpoint

URL = "http://127.0.0.1:9/hook"


def rows(engine, table) -> int:  # type: ignore[no-untyped-def]
    with Session(engine) as session:
        return int(session.scalar(select(func.count()).select_from(table)) or 0)


def written(engine) -> dict[str, int]:  # type: ignore[no-untyped-def]
    tables = (WebhookEndpoint, WebhookEvent, WebhookDelivery, OutboxMessage)
    return {table.__tablename__: rows(engine, table) for table in tables}


def test_the_defaults_are_documented() -> None:
    settings = Settings(_env_file=None)

    assert (settings.webhook_max_endpoints, settings.webhook_test_sends_per_minute) == (16, 5)


def test_past_the_endpoint_limit_a_tenant_gets_a_409_and_nothing_is_stored(
    client, auth, producer, engine
) -> None:
    producer.settings.webhook_max_endpoints = 2
    first = add_endpoint(client, auth, URL)
    add_endpoint(client, auth, URL, enabled=False)
    before = written(engine)

    refused = client.post("/v1/webhook-endpoints", json={"url": URL}, headers=auth)

    assert refused.status_code == 409
    assert "Retry-After" not in refused.headers
    error = refused.json()["error"]
    assert error["type"] == "limit_exceeded"
    assert "at most 2 webhook endpoints" in error["message"]
    assert written(engine) == before
    other = new_tenant(engine, "other")
    other_auth = {"Authorization": f"Bearer {other.api_key}"}
    assert add_endpoint(client, other_auth, URL)["id"]
    client.delete(f"/v1/webhook-endpoints/{first['id']}", headers=auth)
    assert add_endpoint(client, auth, URL)["id"]


def test_concurrent_creates_never_pass_the_limit(producer, tenant, engine) -> None:
    producer.settings.webhook_max_endpoints = 3
    start = threading.Barrier(8)
    outcomes: list[str] = []

    def create() -> None:
        start.wait()
        try:
            producer.webhooks.create_endpoint(tenant.tenant_id, EndpointCreate(url=URL))
            outcomes.append("created")
        except EndpointLimitError:
            outcomes.append("refused")

    threads = [threading.Thread(target=create) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(outcomes) == ["created"] * 3 + ["refused"] * 5
    assert rows(engine, WebhookEndpoint) == 3


def test_past_the_test_send_rate_an_endpoint_gets_a_429_with_retry_after_and_nothing_sent(
    client, auth, producer, engine, redis_url
) -> None:
    producer.webhook_test_rate = WebhookTestRate(redis_url, per_minute=2)
    endpoint = add_endpoint(client, auth, URL)
    other = add_endpoint(client, auth, URL)
    test = f"/v1/webhook-endpoints/{endpoint['id']}/test"
    assert client.post("/v1/webhook-endpoints/whe_nope/test", headers=auth).status_code == 404
    sent = [client.post(test, headers=auth).status_code for _ in range(2)]
    before = written(engine)

    refused = client.post(test, headers=auth)

    assert sent == [202, 202]
    assert refused.status_code == 429
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert refused.json()["error"]["type"] == "rate_limited"
    assert "2 test sends per minute" in refused.json()["error"]["message"]
    assert written(engine) == before
    assert rows(engine, WebhookDelivery) == 2
    other_test = f"/v1/webhook-endpoints/{other['id']}/test"
    assert client.post(other_test, headers=auth).status_code == 202
