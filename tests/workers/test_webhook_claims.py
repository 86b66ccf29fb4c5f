"""The delivery's claim: what one delivery costs the store (statements and transactions,
counted with SQLAlchemy's events on the worker's engine), and a claim given back unsent."""

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta

import pytest
import redis
from sqlalchemy import Engine, select

from schema.jobs import WebhookEventType
from schema.tables import WebhookDelivery, utcnow
from schema.webhooks import DeliveryStatus, EndpointCreate
from store import webhook_events
from store.tenants import NewTenant
from tests.helpers import listening
from workers.runtime import Runtime
from workers.webhooks.delivery import deliver


@dataclass
class Counts:
    statements: int = 0
    transactions: int = 0


@contextmanager
def counted(engine: Engine) -> Iterator[Counts]:
    counts = Counts()

    def statement(*_: object) -> None:
        counts.statements += 1

    def transaction(*_: object) -> None:
        counts.transactions += 1

    with listening(engine, before_cursor_execute=statement, begin=transaction):
        yield counts


def pending_delivery(runtime: Runtime, producer, tenant: NewTenant, url: str) -> str:
    endpoint = producer.webhooks.create_endpoint(tenant.tenant_id, EndpointCreate(url=url))
    target = webhook_events.Target(endpoint.id, url)
    with runtime.sessions.begin() as session:
        webhook_events.record(session, tenant.tenant_id, WebhookEventType.SUCCEEDED, [target], {})
        return session.scalars(
            select(WebhookDelivery.id).where(WebhookDelivery.endpoint_id == endpoint.id)
        ).one()


def status_of(runtime: Runtime, delivery_id: str) -> str:
    with runtime.sessions() as session:
        return session.get_one(WebhookDelivery, delivery_id).status


def test_a_delivery_is_one_claim_and_one_write(runtime, producer, tenant, hooks) -> None:
    delivery_id = pending_delivery(runtime, producer, tenant, hooks.url(hooks.new()))

    with counted(runtime.engine) as counts:
        deliver(runtime, [delivery_id])

    assert status_of(runtime, delivery_id) == DeliveryStatus.SUCCEEDED
    assert (counts.statements, counts.transactions) == (3, 2)


def test_a_failed_attempt_is_a_claim_a_write_and_the_retrys_message(
    runtime, producer, tenant, hooks
) -> None:
    name = hooks.new(default={"status": 500})
    delivery_id = pending_delivery(runtime, producer, tenant, hooks.url(name))

    with counted(runtime.engine) as counts:
        deliver(runtime, [delivery_id])

    assert status_of(runtime, delivery_id) == DeliveryStatus.PENDING
    assert counts.transactions == 3


def test_a_gate_that_cannot_answer_gives_the_claim_back(
    runtime, producer, tenant, hooks, monkeypatch
) -> None:
    delivery_id = pending_delivery(runtime, producer, tenant, hooks.url(hooks.new()))

    def unreachable(*_: object) -> str:
        raise redis.ConnectionError("redis is down")

    monkeypatch.setattr(runtime.webhook_gate, "acquire", unreachable)
    with pytest.raises(redis.ConnectionError):
        deliver(runtime, [delivery_id])

    with runtime.sessions() as session:
        delivery = session.get_one(WebhookDelivery, delivery_id)
    assert (delivery.status, delivery.attempts, delivery.lease_expires_at) == (
        DeliveryStatus.PENDING,
        0,
        None,
    )


def test_a_job_url_delivery_not_due_is_left_alone(runtime, tenant, hooks) -> None:
    target = webhook_events.Target(None, hooks.url(hooks.new()))
    with runtime.sessions.begin() as session:
        webhook_events.record(session, tenant.tenant_id, WebhookEventType.SUCCEEDED, [target], {})
        delivery = session.scalars(
            select(WebhookDelivery).where(WebhookDelivery.tenant_id == tenant.tenant_id)
        ).one()
        delivery.next_attempt_at = utcnow() + timedelta(hours=1)

    deliver(runtime, [delivery.id])

    with runtime.sessions() as session:
        after = session.get_one(WebhookDelivery, delivery.id)
    assert (after.status, after.attempts, after.last_error) == (DeliveryStatus.PENDING, 0, None)
