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


@pytest.fixture
def threaded(redis_url: str) -> Iterator[WakingRedisBroker]:
    """The broker of a worker with two threads."""
    broker = WakingRedisBroker(client=redis.Redis.from_url(redis_url), middleware=[], threads=2)
    broker.declare_queue(QUEUE)
    yield broker
    broker.close()


def test_a_full_consumer_fetches_again_once_a_batch_is_acked(threaded) -> None:
    broker = threaded
    for n in range(20):
        broker.enqueue(message(n))
    consumer = idle_consumer(broker, prefetch=10)
    held = [next(consumer) for _ in range(10)]
    queued = broker.client.llen(f"dramatiq:{QUEUE}")
    assert consumer.batch == 4 and queued == 10
    consumer.misses = 0  # a full consumer waits its shortest backoff for an ack: none comes
    assert next(consumer) is None

    for done in held[:3]:
        consumer.ack(done)
    assert next(consumer) is None
    assert broker.client.llen(f"dramatiq:{QUEUE}") == queued

    consumer.ack(held[3])
    fetched = next(consumer)
    assert fetched.kwargs == {"n": 10}
    assert broker.client.llen(f"dramatiq:{QUEUE}") == queued - 4
    consumer.close()


def test_a_delay_queues_consumer_fetches_at_the_first_ack(threaded) -> None:
    delayed = threaded.consume(f"{QUEUE}.DQ", prefetch=10, timeout=LONG_MS)
    assert isinstance(delayed, WakingConsumer) and delayed.batch == 1
    delayed.close()


def test_an_enqueue_and_its_wake_up_take_one_round_trip(redis_url: str) -> None:
    sent = []  # by this thread, not the consumer's
    here = threading.get_ident()
    plain = redis.Redis.from_url(redis_url).connection_pool.connection_class

    class Counting(plain):  # type: ignore[misc, valid-type]
        def send_packed_command(self, command: object, check_health: bool = True) -> None:
            if threading.get_ident() == here:
                sent.append(command)
            super().send_packed_command(command, check_health)

    client = redis.Redis.from_url(redis_url, connection_class=Counting)
    broker = WakingRedisBroker(client=client, middleware=[])
    broker.declare_queue(QUEUE)
    consumer = idle_consumer(broker)
    waiting, got = in_thread(consumer)  # its fetch has loaded the script
    sent.clear()

    broker.enqueue(message())

    assert len(sent) == 1
    waiting.join(DEADLINE_S)
    assert not waiting.is_alive() and got == [None]
    consumer.close()
    broker.close()


def test_an_enqueue_after_redis_lost_the_script_loads_it_and_still_wakes(broker) -> None:
    consumer = idle_consumer(broker)
    waiting, got = in_thread(consumer)
    broker.client.script_flush()

    broker.enqueue(message())

    waiting.join(DEADLINE_S)
    assert not waiting.is_alive() and got == [None]
    assert next(consumer).kwargs == {"n": 0}
    consumer.close()


def test_a_refused_wake_up_does_not_fail_the_enqueue(client_without) -> None:
    broker = WakingRedisBroker(client=client_without("publish"), middleware=[])
    broker.declare_queue(QUEUE)

    broker.enqueue(message())

    assert broker.client.llen(f"{broker.namespace}:{QUEUE}") == 1
    with pytest.raises(redis.exceptions.NoPermissionError):
        broker.client.publish(wakeup_channel(broker, QUEUE), b"")
    broker.close()


def test_a_lost_script_and_a_refused_wake_up_still_enqueue(client_without) -> None:
    broker = WakingRedisBroker(client=client_without("publish"), middleware=[])
    broker.declare_queue(QUEUE)
    broker.client.script_flush()

    broker.enqueue(message())

    assert broker.client.llen(f"{broker.namespace}:{QUEUE}") == 1
    broker.close()


def test_an_enqueue_redis_refuses_fails_and_stores_nothing(client_without) -> None:
    broker = WakingRedisBroker(client=client_without("evalsha"), middleware=[])
    broker.declare_queue(QUEUE)

    with pytest.raises(redis.exceptions.NoPermissionError):
        broker.enqueue(message())

    assert broker.client.llen(f"{broker.namespace}:{QUEUE}") == 0
    broker.close()


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
