"""Deliveries in batches: one message, one claim and one write for many, sent to each
receiver as a train that stops at its first failure and renews its lease when long."""

from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, update

from schema.jobs import WebhookEventType
from schema.names import DELIVER_DUE_WEBHOOKS, DELIVER_WEBHOOKS
from schema.tables import OutboxMessage, WebhookDelivery, WebhookEndpoint, utcnow
from schema.webhooks import EndpointCreate
from store import webhook_events, webhook_messages
from store.tenants import NewTenant
from tests.workers.test_webhook_claims import counted
from workers.runtime import Runtime
from workers.webhooks import claims, delivery, sender
from workers.webhooks.delivery import deliver
from workers.webhooks.dispatch import dispatch_due


def pending_deliveries(
    runtime: Runtime, producer, tenant: NewTenant, url: str, count: int
) -> tuple[str, list[str]]:
    """An endpoint at ``url`` and ``count`` pending deliveries to it, oldest first."""
    endpoint = producer.webhooks.create_endpoint(tenant.tenant_id, EndpointCreate(url=url))
    target = webhook_events.Target(endpoint.id, url)
    delivery_ids: list[str] = []
    with runtime.sessions.begin() as session:
        for _ in range(count):
            webhook_events.record(
                session, tenant.tenant_id, WebhookEventType.SUCCEEDED, [target], {}
            )
            delivery_ids.append(
                session.scalars(
                    select(WebhookDelivery.id).where(
                        WebhookDelivery.endpoint_id == endpoint.id,
                        WebhookDelivery.id.not_in(delivery_ids),
                    )
                ).one()
            )
    return endpoint.id, delivery_ids


def states(runtime: Runtime, delivery_ids: list[str]) -> list[dict[str, Any]]:
    with runtime.sessions() as session:
        rows = {
            row.id: row
            for row in session.scalars(
                select(WebhookDelivery).where(WebhookDelivery.id.in_(delivery_ids))
            )
        }
    return [
        {
            "status": rows[delivery_id].status,
            "attempts": rows[delivery_id].attempts,
            "leased": rows[delivery_id].lease_expires_at is not None,
            "due_in_s": (
                None
                if rows[delivery_id].next_attempt_at is None
                else (rows[delivery_id].next_attempt_at - utcnow()).total_seconds()
            ),
            "error": rows[delivery_id].last_error,
        }
        for delivery_id in delivery_ids
    ]


def messages(runtime: Runtime, after_id: int = 0) -> list[OutboxMessage]:
    """The delivery messages staged after outbox row ``after_id``, oldest first."""
    with runtime.sessions() as session:
        return list(
            session.scalars(
                select(OutboxMessage)
                .where(OutboxMessage.actor_name == DELIVER_WEBHOOKS, OutboxMessage.id > after_id)
                .order_by(OutboxMessage.id)
            )
        )


def slow_train(runtime: Runtime, producer, tenant: NewTenant, hooks, monkeypatch):
    """A receiver that takes 150 ms an answer and 3 deliveries to it, with leases short
    enough that the train renews them 0.1 s in."""
    name = hooks.new(default={"status": 200, "delay_ms": 150})
    _, delivery_ids = pending_deliveries(runtime, producer, tenant, hooks.url(name), 3)
    monkeypatch.setattr(delivery, "LEASE_MARGIN_S", 0.2)
    return name, delivery_ids


def sent_one(
    runtime: Runtime, hooks, name: str, delivery_ids: list[str]
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The state of the one delivery the train sent, and of the rest, given back unsent
    and unclaimed."""
    first, *rest = states(runtime, delivery_ids)
    assert hooks.state(name)["received"] == 1
    for state in rest:
        assert (state["status"], state["attempts"], state["leased"]) == ("pending", 0, False)
    return first, rest


def place_free(runtime: Runtime, hooks) -> bool:
    """No train holds a place at the simulator's gate."""
    url = httpx.URL(hooks.sim.url)
    keys = runtime.webhook_gate._keys(f"{url.scheme}://{url.host}:{url.port}")
    return runtime.webhook_gate.client.zcard(keys[0]) == 0


def test_a_batch_is_one_claim_and_one_write(runtime, producer, tenant, hooks) -> None:
    name = hooks.new()
    _, delivery_ids = pending_deliveries(runtime, producer, tenant, hooks.url(name), 3)

    with counted(runtime.engine) as counts:
        deliver(runtime, delivery_ids)

    assert [state["status"] for state in states(runtime, delivery_ids)] == ["succeeded"] * 3
    assert hooks.state(name)["received"] == 3
    # the claim; the attempts in one INSERT; the successes' settlement in one UPDATE
    assert (counts.statements, counts.transactions) == (3, 2)


def test_an_event_for_several_endpoints_stages_each_ones_due_message(
    runtime, producer, tenant, hooks
) -> None:
    urls = [hooks.url(hooks.new()) for _ in range(3)]
    targets = [
        webhook_events.Target(
            producer.webhooks.create_endpoint(tenant.tenant_id, EndpointCreate(url=url)).id, url
        )
        for url in urls
    ]
    with runtime.sessions.begin() as session:
        rows = webhook_events.record(
            session, tenant.tenant_id, WebhookEventType.SUCCEEDED, targets, {}
        )

    assert [(row.actor_name, row.kwargs, row.coalesce_key) for row in rows] == [
        (
            DELIVER_DUE_WEBHOOKS,
            {"endpoint_id": target.endpoint_id},
            f"webhooks:due:{target.endpoint_id}",
        )
        for target in targets
    ]


def test_a_train_stops_at_its_first_failure_and_gives_the_rest_back(
    runtime, producer, tenant, hooks
) -> None:
    name = hooks.new(responses=[{"status": 200}, {"status": 500}])
    _, delivery_ids = pending_deliveries(runtime, producer, tenant, hooks.url(name), 4)

    deliver(runtime, delivery_ids)

    first, second, *rest = states(runtime, delivery_ids)
    assert hooks.state(name)["received"] == 2
    assert (first["status"], first["attempts"]) == ("succeeded", 1)
    assert (second["status"], second["attempts"]) == ("pending", 1)
    assert second["error"] == "the receiver answered 500"
    for state in rest:
        assert (state["status"], state["attempts"], state["leased"]) == ("pending", 0, False)
        assert 0 < state["due_in_s"] <= 1.0
    assert messages(runtime)[-1].kwargs == {"delivery_ids": delivery_ids[2:]}


def test_a_receiver_slow_to_answer_gets_the_rest_of_its_train_a_message_each(
    runtime, producer, tenant, hooks, monkeypatch
) -> None:
    monkeypatch.setattr(delivery, "SLOW_ANSWER_MS", 100)
    name = hooks.new(responses=[{"status": 200, "delay_ms": 150}])
    _, delivery_ids = pending_deliveries(runtime, producer, tenant, hooks.url(name), 3)

    deliver(runtime, delivery_ids)

    first, rest = sent_one(runtime, hooks, name, delivery_ids)
    assert (first["status"], first["attempts"]) == ("succeeded", 1)
    for state in rest:
        assert state["due_in_s"] <= 0
    assert [row.kwargs for row in messages(runtime)[-2:]] == [
        {"delivery_ids": [delivery_id]} for delivery_id in delivery_ids[1:]
    ]


def test_a_receiver_that_asks_to_slow_down_holds_the_rest_of_its_train(
    runtime, producer, tenant, hooks
) -> None:
    name = hooks.new(responses=[{"status": 429, "retry_after": 30}])
    _, delivery_ids = pending_deliveries(runtime, producer, tenant, hooks.url(name), 3)

    deliver(runtime, delivery_ids)

    first, rest = sent_one(runtime, hooks, name, delivery_ids)
    assert (first["status"], first["attempts"]) == ("pending", 1)
    for state in rest:
        assert 29 <= state["due_in_s"] <= 30


def test_a_receiver_gone_mid_train_fails_the_rest_unsent(runtime, producer, tenant, hooks) -> None:
    name = hooks.new(responses=[{"status": 200}, {"status": 410}])
    endpoint_id, delivery_ids = pending_deliveries(runtime, producer, tenant, hooks.url(name), 4)

    deliver(runtime, delivery_ids)

    first, second, *rest = states(runtime, delivery_ids)
    assert hooks.state(name)["received"] == 2
    assert first["status"] == "succeeded"
    assert (second["status"], second["attempts"]) == ("failed", 1)
    for state in rest:
        assert (state["status"], state["attempts"]) == ("failed", 0)
        assert state["error"].startswith("endpoint disabled")
    with runtime.sessions() as session:
        assert session.get_one(WebhookEndpoint, endpoint_id).enabled is False


def test_a_long_train_renews_its_lease_and_its_place(
    runtime, producer, tenant, hooks, monkeypatch
) -> None:
    _, delivery_ids = slow_train(runtime, producer, tenant, hooks, monkeypatch)
    renewals: list[int] = []
    places: list[str | None] = []
    renew, acquire = claims.renew, runtime.webhook_gate.acquire

    def counted_renew(engine, held, lease_s):
        renewals.append(len(held))
        return renew(engine, held, lease_s)

    def noted_acquire(origin: str, lease_ms: int, lease: str | None = None):
        places.append(lease)
        return acquire(origin, lease_ms, lease)

    monkeypatch.setattr(claims, "renew", counted_renew)
    monkeypatch.setattr(runtime.webhook_gate, "acquire", noted_acquire)

    deliver(runtime, delivery_ids)

    assert [state["status"] for state in states(runtime, delivery_ids)] == ["succeeded"] * 3
    assert renewals == [2, 1]
    first, *again = places
    assert first is None and len(again) == 2 and len(set(again)) == 1
    assert place_free(runtime, hooks)


def test_a_claim_another_worker_took_meanwhile_is_not_sent(
    runtime, producer, tenant, hooks, monkeypatch
) -> None:
    name, delivery_ids = slow_train(runtime, producer, tenant, hooks, monkeypatch)
    post = sender.post
    theirs = utcnow() + timedelta(hours=1)

    def post_then_lose_the_last(*args: Any, **kwargs: Any) -> sender.Reply:
        monkeypatch.setattr(sender, "post", post)
        with runtime.sessions.begin() as session:
            session.execute(
                update(WebhookDelivery)
                .where(WebhookDelivery.id == delivery_ids[2])
                .values(lease_expires_at=theirs, attempts=WebhookDelivery.attempts + 1)
            )
        return post(*args, **kwargs)

    monkeypatch.setattr(sender, "post", post_then_lose_the_last)

    deliver(runtime, delivery_ids)

    first, second, third = states(runtime, delivery_ids)
    assert hooks.state(name)["received"] == 2
    assert first["status"] == second["status"] == "succeeded"
    assert (third["status"], third["attempts"], third["leased"]) == ("pending", 2, True)


def test_the_sweep_sends_a_backlog_in_batches(runtime, producer, tenant, hooks) -> None:
    count = 2 * webhook_messages.BATCH + 5
    _, delivery_ids = pending_deliveries(runtime, producer, tenant, hooks.url(hooks.new()), count)
    with runtime.sessions.begin() as session:
        session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.id.in_(delivery_ids))
            .values(dispatched_at=utcnow() - timedelta(hours=1))
        )
        session.execute(update(OutboxMessage).values(sent_at=utcnow()))
        before = session.scalar(select(func.max(OutboxMessage.id)))

    assert dispatch_due(runtime.sessions, runtime.broker) == count

    batches = [row.kwargs["delivery_ids"] for row in messages(runtime, before)]
    assert [len(batch) for batch in batches] == [webhook_messages.BATCH] * 2 + [5]
    assert sorted(i for batch in batches for i in batch) == sorted(delivery_ids)


def test_a_message_staged_before_batches_still_delivers(runtime, producer, tenant, hooks) -> None:
    name = hooks.new()
    _, (delivery_id,) = pending_deliveries(runtime, producer, tenant, hooks.url(name), 1)

    runtime.broker.get_actor("deliver_webhook")(delivery_id)

    assert states(runtime, [delivery_id])[0]["status"] == "succeeded"
    assert hooks.state(name)["received"] == 1


def test_a_gate_that_pauses_the_receiver_at_a_renewal_holds_the_rest(
    runtime, producer, tenant, hooks, monkeypatch
) -> None:
    name, delivery_ids = slow_train(runtime, producer, tenant, hooks, monkeypatch)
    acquire = runtime.webhook_gate.acquire

    def paused_at_renewal(origin: str, lease_ms: int, lease: str | None = None):
        return 5000 if lease is not None else acquire(origin, lease_ms)

    monkeypatch.setattr(runtime.webhook_gate, "acquire", paused_at_renewal)

    deliver(runtime, delivery_ids)

    first, rest = sent_one(runtime, hooks, name, delivery_ids)
    assert first["status"] == "succeeded"
    for state in rest:
        assert 4 <= state["due_in_s"] <= 5
    assert place_free(runtime, hooks)


def test_an_error_mid_train_records_what_was_sent_and_gives_the_rest_back(
    runtime, producer, tenant, hooks, monkeypatch
) -> None:
    name, delivery_ids = slow_train(runtime, producer, tenant, hooks, monkeypatch)

    def store_down(*_: object) -> None:
        raise ConnectionError("the store went away")

    monkeypatch.setattr(claims, "renew", store_down)

    with pytest.raises(ConnectionError):
        deliver(runtime, delivery_ids)

    first, _ = sent_one(runtime, hooks, name, delivery_ids)
    assert (first["status"], first["attempts"]) == ("succeeded", 1)
    assert place_free(runtime, hooks)
