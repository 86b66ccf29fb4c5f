"""Fresh deliveries to an endpoint: one coalesced message sends whatever is due, on a
real Redis broker and store."""

from collections.abc import Iterator

import pytest
from dramatiq import Message
from sqlalchemy import func, select

from infra import coalesce
from schema.jobs import WebhookEventType
from schema.names import DELIVER_DUE_WEBHOOKS, WEBHOOKS_QUEUE
from schema.tables import OutboxMessage, WebhookDelivery
from schema.webhooks import EndpointCreate
from store import outbox, webhook_events, webhook_messages
from store.tenants import NewTenant
from store.webhook_endpoints import disable
from tests.workers.test_webhook_batches import states
from workers.runtime import Runtime
from workers.webhooks import delivery, due


class Endpoint:
    """An endpoint at a fresh hook, and events recorded for it one transaction each."""

    def __init__(self, runtime: Runtime, producer, tenant: NewTenant, hooks, **hook) -> None:
        self.runtime, self.tenant, self.hooks = runtime, tenant, hooks
        self.hook = hooks.new(**hook)
        url = hooks.url(self.hook)
        self.id = producer.webhooks.create_endpoint(tenant.tenant_id, EndpointCreate(url=url)).id
        self.target = webhook_events.Target(self.id, url)

    def event(self) -> list[OutboxMessage]:
        """Record one event; its outbox rows, not yet sent."""
        with self.runtime.sessions.begin() as session:
            return webhook_events.record(
                session, self.tenant.tenant_id, WebhookEventType.SUCCEEDED, [self.target], {}
            )

    def deliveries(self) -> list[str]:
        with self.runtime.sessions() as session:
            return list(
                session.scalars(
                    select(WebhookDelivery.id).where(WebhookDelivery.endpoint_id == self.id)
                )
            )

    def received(self) -> int:
        return int(self.hooks.state(self.hook)["received"])


@pytest.fixture
def endpoint(runtime, producer, tenant, hooks) -> Endpoint:
    return Endpoint(runtime, producer, tenant, hooks)


@pytest.fixture
def small_batches(monkeypatch) -> Iterator[int]:
    monkeypatch.setattr(webhook_messages, "BATCH", 2)
    yield 2


def queued(runtime: Runtime) -> list[dict]:
    """The kwargs of the messages waiting on the webhooks queue."""
    broker = runtime.broker
    return [
        Message.decode(raw).kwargs
        for raw in broker.client.hvals(f"{broker.namespace}:{WEBHOOKS_QUEUE}.msgs")
    ]


def drain(runtime: Runtime) -> None:
    """Drop the messages waiting on the webhooks queue: the test runs their work itself."""
    queue = f"{runtime.broker.namespace}:{WEBHOOKS_QUEUE}"
    runtime.broker.client.delete(queue, f"{queue}.msgs")


def run_due(runtime: Runtime, endpoint_id: str) -> None:
    runtime.broker.get_actor(DELIVER_DUE_WEBHOOKS)(endpoint_id)


def test_fresh_events_wait_for_one_message_that_sends_them_all(runtime, endpoint) -> None:
    rows = [row for _ in range(3) for row in endpoint.event()]

    assert outbox.send(runtime.sessions, runtime.broker, rows) == 3

    assert queued(runtime) == [{"endpoint_id": endpoint.id}]
    with runtime.sessions() as session:
        assert session.scalar(select(func.count()).where(OutboxMessage.sent_at.is_(None))) == 0
    run_due(runtime, endpoint.id)
    assert [state["status"] for state in states(runtime, endpoint.deliveries())] == [
        "succeeded"
    ] * 3
    assert endpoint.received() == 3


def test_an_event_while_the_message_sends_is_taken_by_its_last_claim(
    runtime, endpoint, monkeypatch
) -> None:
    outbox.send(runtime.sessions, runtime.broker, endpoint.event())
    send = delivery.send
    skipped: list[int] = []

    def send_then_record(*args) -> None:
        send(*args)
        if not skipped:  # the first train is out; the mark is still held
            skipped.append(outbox.send(runtime.sessions, runtime.broker, endpoint.event()))

    monkeypatch.setattr(delivery, "send", send_then_record)
    drain(runtime)

    run_due(runtime, endpoint.id)

    assert skipped == [1] and queued(runtime) == []
    assert [state["status"] for state in states(runtime, endpoint.deliveries())] == [
        "succeeded"
    ] * 2
    mark = coalesce.mark_key(runtime.broker, webhook_messages.due_key(endpoint.id))
    assert not runtime.broker.client.exists(mark)


def test_a_full_batch_hands_the_rest_on_to_another_message(
    runtime, endpoint, small_batches
) -> None:
    for _ in range(5):
        endpoint.event()

    due.deliver_due(runtime, endpoint.id)

    assert endpoint.received() == small_batches
    assert queued(runtime) == [{"endpoint_id": endpoint.id}]
    while queued(runtime):
        drain(runtime)
        due.deliver_due(runtime, endpoint.id)
    assert endpoint.received() == 5
    assert {state["status"] for state in states(runtime, endpoint.deliveries())} == {"succeeded"}


def test_a_hand_on_that_cannot_be_staged_gives_the_batch_back(
    runtime, endpoint, small_batches, monkeypatch
) -> None:
    for _ in range(3):
        endpoint.event()

    def broken(*args, **kwargs):
        raise RuntimeError("the store went away")

    monkeypatch.setattr(webhook_messages, "stage_due", broken)

    with pytest.raises(RuntimeError):
        due.deliver_due(runtime, endpoint.id)

    assert endpoint.received() == 0
    for state in states(runtime, endpoint.deliveries()):
        assert (state["status"], state["attempts"], state["leased"]) == ("pending", 0, False)


def test_a_message_for_a_disabled_endpoint_fails_what_is_pending(runtime, endpoint) -> None:
    endpoint.event()
    with runtime.sessions.begin() as session:
        disable(session, endpoint.id, "turned off by a test")

    run_due(runtime, endpoint.id)

    (state,) = states(runtime, endpoint.deliveries())
    assert state["status"] == "failed" and "turned off by a test" in state["error"]
    assert endpoint.received() == 0


def test_a_message_with_nothing_due_sends_nothing_and_clears_the_mark(runtime, endpoint) -> None:
    outbox.send(runtime.sessions, runtime.broker, endpoint.event())
    run_due(runtime, endpoint.id)

    run_due(runtime, endpoint.id)

    assert endpoint.received() == 1
    assert outbox.send(runtime.sessions, runtime.broker, endpoint.event()) == 1
    assert len(queued(runtime)) == 2  # the first message's copy was never consumed
