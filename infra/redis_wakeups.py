"""A Redis broker whose idle consumers wake when a message arrives, instead of sleeping.

Dramatiq's Redis consumer polls: each empty fetch sleeps a backoff that doubles up to the
worker's timeout (a second by default), so a worker idle between jobs notices a new
message only after its current sleep ends, tens to hundreds of milliseconds late.
Here every enqueue also publishes on the queue's wake-up channel, and an idle consumer
waits on that channel for its backoff instead of sleeping, so it fetches at once. A
consumer whose prefetch is full waits likewise for its messages to be acked, and then
fetches again once a batch of them is: half of what it may hold beyond the worker's
``threads``, which still leaves every thread a message. One fetch per batch, not one per
ack: a busy worker acks a message every few milliseconds. Until it is full, a consumer
fetches whatever is free; a delay queue's consumer always does, as its messages wait for
their time, not for a thread.

The wake-up costs no round trip of its own: the broker's dispatch script is wrapped so
that an enqueue sends ``EVALSHA`` and ``PUBLISH`` in one pipeline. The wrapper reads only
the script's command and queue name (its first and third arguments), so Dramatiq still
builds every argument the script takes.

Polling stays the safety net: a wake-up is lost only if its publish fails or the
consumer's subscription drops, and then the message waits at most the worker's timeout,
as with plain Dramatiq. Messages moved by Dramatiq's maintenance publish nothing and are
found the same way.
"""

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import redis
from dramatiq import Message
from dramatiq.brokers.redis import RedisBroker, _RedisConsumer
from dramatiq.common import compute_backoff, q_name
from dramatiq.errors import ConnectionClosed
from redis.commands.core import Script

logger = logging.getLogger(__name__)


def wakeup_channel(broker: RedisBroker, queue_name: str) -> str:
    """The pub/sub channel of a queue; channels span a server's databases, so the
    database number keeps brokers on different databases apart."""
    db = broker.client.connection_pool.connection_kwargs.get("db", 0)
    return f"{broker.namespace}:{db}:wake:{queue_name}"


class WakingRedisBroker(RedisBroker):
    """A ``RedisBroker`` that announces each enqueue on the queue's wake-up channel."""

    def __init__(self, *, threads: int = 0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.threads = threads
        self.scripts["dispatch"] = WakingDispatch(self, self.scripts["dispatch"])

    @property
    def consumer_class(self) -> type[_RedisConsumer]:
        return WakingConsumer


class WakingDispatch:
    """Dramatiq's dispatch script, with each enqueue's wake-up in the same round trip.

    A failed wake-up only leaves the consumers to their polling, so it does not fail the
    enqueue. If Redis lost the script (a restart, ``SCRIPT FLUSH``), the enqueue runs
    again through the script as Dramatiq runs it, which loads it. The wake-up has gone out
    already; a consumer it woke too early has its backoff reset, so it fetches again
    within milliseconds."""

    def __init__(self, broker: RedisBroker, script: Script) -> None:
        self._broker = broker
        self._script = script

    def __call__(self, keys: Sequence[str], args: Sequence[object]) -> object:
        if args[0] != "enqueue":
            return self._script(keys=keys, args=args)
        channel = wakeup_channel(self._broker, str(args[2]))
        with self._broker.client.pipeline(transaction=False) as pipe:
            pipe.evalsha(self._script.sha, len(keys), *keys, *args)
            pipe.publish(channel, b"")
            enqueued, woken = pipe.execute(raise_on_error=False)
        if isinstance(enqueued, redis.exceptions.NoScriptError):
            enqueued = self._script(keys=keys, args=args)
        if isinstance(enqueued, Exception):
            raise enqueued
        if isinstance(woken, Exception):
            logger.debug("no wake-up on %s: %s", channel, woken)
        return enqueued


class WakingConsumer(_RedisConsumer):
    """Dramatiq's Redis consumer with its idle sleeps cut short by wake-ups and acks."""

    def __init__(
        self, broker: WakingRedisBroker, queue_name: str, prefetch: int, timeout: int
    ) -> None:
        super().__init__(broker, queue_name, prefetch, timeout)
        delayed = q_name(queue_name) != queue_name
        self.batch = 1 if delayed else max(1, (prefetch - broker.threads) // 2)
        self.refilling = False  # it was full, and waits for a batch of acks
        self.acked = threading.Event()
        self.wakeups = broker.client.pubsub(ignore_subscribe_messages=True)
        try:
            self.wakeups.subscribe(wakeup_channel(broker, queue_name))
        except redis.ConnectionError as exc:
            self.wakeups.close()
            raise ConnectionClosed(exc) from None

    def ack(self, message: Message) -> None:
        try:
            super().ack(message)
        finally:
            self.acked.set()

    def nack(self, message: Message) -> None:
        try:
            super().nack(message)
        finally:
            self.acked.set()

    def __next__(self) -> object:
        if self.message_cache:
            return super().__next__()
        try:
            free = self.prefetch - self.outstanding_message_count
            if free <= 0 or (self.refilling and free < self.batch):
                self.refilling = True
                self._idle(self.acked.wait)
                self.acked.clear()
                return None
            self.refilling = False
            self.message_cache = self.broker.do_fetch(self.queue_name, free)
            if not self.message_cache:
                self._idle(self._await_wakeup)
                return None
        except redis.ConnectionError as exc:
            raise ConnectionClosed(exc) from None
        return super().__next__()

    def _idle(self, wait: Callable[[float], object]) -> None:
        """Wait up to the next backoff for ``wait`` to report something; anything
        reported resets the backoff."""
        self.misses, backoff_ms = compute_backoff(self.misses, max_backoff=self.timeout)
        if wait(backoff_ms / 1000):
            self.misses = 0

    def _await_wakeup(self, timeout_s: float) -> bool:
        """Whether a wake-up came within ``timeout_s``; those queued behind it are read
        too, since one fetch serves them all. (Reading the subscription's confirmation
        also returns None, before the timeout: the wait goes on.)"""
        deadline = time.monotonic() + timeout_s
        while (left := deadline - time.monotonic()) > 0:
            if self.wakeups.get_message(timeout=left) is not None:
                while self.wakeups.get_message(timeout=0) is not None:
                    pass
                return True
        return False

    def close(self) -> None:
        self.wakeups.close()
