"""Coalesced messages on a real Redis: one message under a key waits at a time."""

from collections.abc import Iterator

import pytest
import redis
from dramatiq import Message
from dramatiq.brokers.stub import StubBroker

from infra import coalesce
from infra.redis_wakeups import WakingRedisBroker

QUEUE = "coalesce-test"
KEY = "webhooks:due:whe_test"


@pytest.fixture
def broker(redis_url: str) -> Iterator[WakingRedisBroker]:
    broker = WakingRedisBroker(client=redis.Redis.from_url(redis_url), middleware=[])
    broker.declare_queue(QUEUE)
    broker.client.delete(coalesce.mark_key(broker, KEY), f"{broker.namespace}:{QUEUE}")
    yield broker
    broker.client.delete(coalesce.mark_key(broker, KEY), f"{broker.namespace}:{QUEUE}")
    broker.close()


def message(n: int = 0) -> Message:
    return Message(QUEUE, "some_actor", (), {"n": n}, {})


def queued(broker: WakingRedisBroker) -> int:
    return int(broker.client.llen(f"{broker.namespace}:{QUEUE}"))


def test_a_message_under_a_waiting_key_is_not_sent(broker) -> None:
    assert coalesce.enqueue(broker, message(0), KEY, None)
    assert not coalesce.enqueue(broker, message(1), KEY, None)

    assert queued(broker) == 1
    assert 0 < broker.client.ttl(coalesce.mark_key(broker, KEY)) <= coalesce.MARK_TTL_S


def test_a_taken_key_lets_the_next_message_go(broker) -> None:
    coalesce.enqueue(broker, message(0), KEY, None)

    coalesce.taken(broker, KEY)

    assert coalesce.enqueue(broker, message(1), KEY, None)
    assert queued(broker) == 2


def test_messages_without_a_key_all_go(broker) -> None:
    for n in range(3):
        assert coalesce.enqueue(broker, message(n), None, None)

    assert queued(broker) == 3


def test_a_failed_enqueue_clears_its_mark(client_without) -> None:
    refusing = WakingRedisBroker(client=client_without("evalsha"), middleware=[])
    refusing.declare_queue(QUEUE)

    with pytest.raises(redis.exceptions.NoPermissionError):
        coalesce.enqueue(refusing, message(), KEY, None)

    assert not refusing.client.exists(coalesce.mark_key(refusing, KEY))


def test_a_mark_that_cannot_be_cleared_lapses_and_the_error_stands(
    redis_url, client_without
) -> None:
    refusing = WakingRedisBroker(client=client_without("evalsha", "del"), middleware=[])
    refusing.declare_queue(QUEUE)
    admin = redis.Redis.from_url(redis_url)
    mark = coalesce.mark_key(refusing, KEY)

    with pytest.raises(redis.exceptions.NoPermissionError):
        coalesce.enqueue(refusing, message(), KEY, None)

    assert 0 < admin.ttl(mark) <= coalesce.MARK_TTL_S
    admin.delete(mark)


def test_a_broker_without_redis_sends_every_message() -> None:
    broker = StubBroker()
    broker.declare_queue(QUEUE)

    for n in range(2):
        assert coalesce.enqueue(broker, message(n), KEY, None)
    coalesce.taken(broker, KEY)

    assert broker.queues[QUEUE].qsize() == 2
