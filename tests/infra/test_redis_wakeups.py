"""Idle Redis consumers wake when a message is enqueued or acked, on a real Redis.

Each test first makes the consumer's backoff long (a minute), so a consumer that slept it
out could not pass within the tests' deadline: only a wake-up lets it through."""

import threading
from collections.abc import Iterator

import pytest
import redis
from dramatiq import Message
from dramatiq.errors import ConnectionClosed
from redis.backoff import NoBackoff
from redis.retry import Retry

from genq.processes import free_port, wait_until
from infra.redis_wakeups import WakingConsumer, WakingRedisBroker, wakeup_channel

QUEUE = "wake-test"
LONG_MS = 60_000
DEADLINE_S = 20


@pytest.fixture
def broker(redis_url: str) -> Iterator[WakingRedisBroker]:
    broker = WakingRedisBroker(client=redis.Redis.from_url(redis_url), middleware=[])
    broker.declare_queue(QUEUE)
    yield broker
    broker.close()


def idle_consumer(broker: WakingRedisBroker, prefetch: int = 1) -> WakingConsumer:
    consumer = broker.consume(QUEUE, prefetch=prefetch, timeout=LONG_MS)
    assert isinstance(consumer, WakingConsumer)
    consumer.misses = 20  # the next backoff is the whole timeout
    return consumer


def in_thread(consumer: WakingConsumer) -> tuple[threading.Thread, list[object]]:
    """``next(consumer)`` in a thread, once the thread waits; its result goes in the list."""
    got: list[object] = []
    thread = threading.Thread(target=lambda: got.append(next(consumer)), daemon=True)
    thread.start()
    wait_until(lambda: consumer.misses == 21, DEADLINE_S, "the consumer to wait")
    return thread, got


def message(n: int = 0) -> Message:
    return Message(QUEUE, "some_actor", (), {"n": n}, {})


def test_an_idle_consumer_wakes_when_a_message_is_enqueued(broker) -> None:
    consumer = idle_consumer(broker)
    waiting, got = in_thread(consumer)

    broker.enqueue(message())

    waiting.join(DEADLINE_S)
    assert not waiting.is_alive() and got == [None]
    assert consumer.misses == 0
    assert next(consumer).kwargs == {"n": 0}
    consumer.close()


def test_a_full_consumer_wakes_when_a_message_is_acked(broker) -> None:
    broker.enqueue(message())
    consumer = idle_consumer(broker, prefetch=1)
    held = next(consumer)
    consumer.misses = 20
    waiting, got = in_thread(consumer)

    consumer.ack(held)

    waiting.join(DEADLINE_S)
    assert not waiting.is_alive() and got == [None]
    consumer.close()


def test_a_failed_wake_up_does_not_fail_the_enqueue(broker, monkeypatch) -> None:
    def refuse(*args: object) -> None:
        raise redis.ConnectionError("no publish")

    monkeypatch.setattr(broker.client, "publish", refuse)

    broker.enqueue(message())

    assert broker.client.llen(f"{broker.namespace}:{QUEUE}") == 1


def test_a_lost_fetch_or_subscription_closes_the_consumer(broker, monkeypatch) -> None:
    consumer = idle_consumer(broker)

    def lost(*args: object, **kwargs: object) -> None:
        raise redis.ConnectionError("gone")

    monkeypatch.setattr(consumer.wakeups, "get_message", lost)
    with pytest.raises(ConnectionClosed):
        next(consumer)
    monkeypatch.setattr(broker, "do_fetch", lost)
    with pytest.raises(ConnectionClosed):
        next(consumer)
    consumer.close()


def test_a_consumer_that_cannot_subscribe_is_closed() -> None:
    unreachable = WakingRedisBroker(
        client=redis.Redis(port=free_port(), retry=Retry(NoBackoff(), 0)), middleware=[]
    )
    with pytest.raises(ConnectionClosed):
        unreachable.consume(QUEUE)


def test_brokers_on_other_databases_have_their_own_channels(redis_url: str) -> None:
    channels = {
        wakeup_channel(WakingRedisBroker(client=redis.Redis(db=db), middleware=[]), QUEUE)
        for db in (0, 1)
    }
    assert len(channels) == 2
