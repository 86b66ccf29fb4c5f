"""Coalesced messages: one message under a key waits in the queue at a time.

A message that stands for "go and see what is due" (fresh webhook deliveries to one
endpoint) does the same work however many times it was sent while it waited. So its
sender sets the key's mark in Redis (``SET NX``) and enqueues only if the mark was free;
the actor clears the mark (:func:`taken`) and then reads the store. Whatever a skipped
sender committed before it found the mark set is therefore seen by the read that
follows the clearing.

A mark outlives a lost message by at most ``MARK_TTL_S``; until then, what the message
was for waits for the store's own sweeps. A failed enqueue clears the mark it set, so the
next sender tries again. Brokers without Redis (RabbitMQ) send every message.
"""

import logging

import dramatiq
from dramatiq.brokers.redis import RedisBroker

logger = logging.getLogger(__name__)

MARK_TTL_S = 60


def mark_key(broker: RedisBroker, key: str) -> str:
    return f"{broker.namespace}:coalesce:{key}"


def enqueue(
    broker: dramatiq.Broker, message: dramatiq.Message, key: str | None, delay_ms: int | None
) -> bool:
    """Enqueue ``message`` unless a message under ``key`` is waiting; whether it went."""
    if key is None or not isinstance(broker, RedisBroker):
        broker.enqueue(message, delay=delay_ms)
        return True
    mark = mark_key(broker, key)
    if not broker.client.set(mark, message.message_id, nx=True, ex=MARK_TTL_S):
        return False
    try:
        broker.enqueue(message, delay=delay_ms)
    except Exception:
        _clear(broker, mark)
        raise
    return True


def taken(broker: dramatiq.Broker, key: str) -> None:
    """Clear ``key``'s mark: the message under it is being handled, so the next sender
    sends again."""
    if isinstance(broker, RedisBroker):
        broker.client.delete(mark_key(broker, key))


def _clear(broker: RedisBroker, mark: str) -> None:
    try:
        broker.client.delete(mark)
    except Exception:
        logger.warning("coalesce: could not clear %s; it lapses in %ds", mark, MARK_TTL_S)
