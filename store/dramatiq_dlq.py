"""Bringing Dramatiq's own dead letters into genq's ``dead_letters`` table.

Dramatiq's Redis broker moves a message it gives up on (an actor the worker does not
know, a message past its age limit, retries exhausted) to a dead-letter queue: the
message id goes into the sorted set ``{namespace}:{queue}.XQ``, scored by when it was
dead-lettered, and the encoded message into the hash ``{namespace}:{queue}.XQ.msgs``
(see dramatiq/brokers/redis/dispatch.lua, command ``nack``). Dramatiq drops them after
a week; genq keeps them with the rest, where an operator can see and requeue them.

A letter's id is derived from the Redis message id and inserted with ON CONFLICT DO
NOTHING, and the message leaves Redis only after the commit, so two imports running at
once, or one that dies half-way, store each message exactly once.

Dramatiq's RabbitMQ broker dead-letters into RabbitMQ queues (``{queue}.XQ``) instead,
where they stay for RabbitMQ's tools; there is nothing to import from Redis then.
"""

import hashlib
import logging
from datetime import UTC, datetime
from functools import cache
from typing import Any

import redis
from dramatiq import Message
from dramatiq.errors import DecodeError
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session, sessionmaker

from infra.scrub import scrub, scrub_value
from schema.names import BROKER_NAMESPACE
from schema.settings import BrokerKind
from schema.tables import DeadLetter, Job

ERROR_CLASS = "dramatiq_dead_letter"
UNDECODABLE = "dramatiq_undecodable"
GAVE_UP = "Dramatiq gave up on the message: no worker knows its actor, or a middleware failed it"
BATCH = 200

logger = logging.getLogger(__name__)


def import_dramatiq_dead_letters(
    broker: BrokerKind,
    client: redis.Redis,
    sessions: sessionmaker[Session],
    namespace: str = BROKER_NAMESPACE,
) -> int:
    """Move every message in the namespace's Dramatiq dead-letter queues into
    ``dead_letters``; return how many were moved (none unless the broker is Redis)."""
    if broker != "redis":
        _note_skipped(broker)
        return 0
    moved = 0
    for key in client.scan_iter(match=f"{namespace}:*.XQ", count=100):
        xqueue = _text(key)
        queue_name = xqueue[len(namespace) + 1 : -len(".XQ")]
        moved += _import_queue(client, sessions, xqueue, queue_name)
    return moved


@cache
def _note_skipped(broker: BrokerKind) -> None:
    """Say once per process why Dramatiq's dead letters are not imported."""
    logger.info(
        "dead letters: Dramatiq on %s keeps its own in the <queue>.XQ queues there; "
        "genq imports them only from Redis",
        broker,
    )


def _import_queue(
    client: redis.Redis, sessions: sessionmaker[Session], xqueue: str, queue_name: str
) -> int:
    moved = 0
    while entries := client.zrange(xqueue, 0, BATCH - 1, withscores=True):
        redis_ids = [redis_id for redis_id, _ in entries]
        encoded = client.hmget(f"{xqueue}.msgs", redis_ids)
        with sessions.begin() as session:
            for (redis_id, score), data in zip(entries, encoded, strict=True):
                if data is not None:
                    _store(session, queue_name, _text(redis_id), score, data)
        client.zrem(xqueue, *redis_ids)
        client.hdel(f"{xqueue}.msgs", *redis_ids)
        moved += len(redis_ids)
    return moved


def _store(session: Session, queue_name: str, redis_id: str, score: float, data: bytes) -> None:
    failed_at = datetime.fromtimestamp(score / 1000, UTC)
    letter: dict[str, Any] = {
        "id": "dlq_" + hashlib.sha256(f"{queue_name}:{redis_id}".encode()).hexdigest()[:32],
        "source": "dramatiq",
        "status": "open",
        "queue_name": queue_name,
        "attempts": [],
        "first_failed_at": failed_at,
        "last_failed_at": failed_at,
        "created_at": datetime.now(UTC),
    }
    try:
        message = Message.decode(data)
    except DecodeError:
        letter |= {
            "error_class": UNDECODABLE,
            "error_message": "Dramatiq dead-lettered a message genq cannot decode",
            "message": {"raw": scrub(data.decode(errors="replace")[:4000])},
        }
    else:
        letter |= _described(session, message, failed_at)
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    session.execute(insert(DeadLetter).values(**letter).on_conflict_do_nothing())


def _reason(message: Message[Any], failed_at: datetime) -> str:
    """Why Dramatiq gave up, as far as the message tells: the copy in the dead-letter queue
    is the one last fetched, so its options say how it stood before its final try."""
    options = message.options
    max_age = options.get("max_age")
    age_ms = failed_at.timestamp() * 1000 - message.message_timestamp
    if isinstance(max_age, int | float) and max_age and age_ms >= max_age:
        return f"Dramatiq dropped the message: it passed its age limit of {max_age} ms"
    last_error = (options.get("traceback") or "").strip().splitlines()[-1:]
    if last_error:
        retries = options.get("retries", 0)
        return f"Dramatiq gave up after {retries} retries; last error: {last_error[0]}"
    return GAVE_UP


def _described(session: Session, message: Message[Any], failed_at: datetime) -> dict[str, Any]:
    """The letter's columns from the message: its job, if it names one, and why it failed."""
    options = {k: v for k, v in message.options.items() if k not in ("redis_message_id", "eta")}
    job_ref = message.kwargs.get("job_id")
    job = session.get(Job, job_ref) if isinstance(job_ref, str) else None
    return {
        "job_id": job.id if job else None,
        "tenant_id": job.tenant_id if job else None,
        "route": job.route if job else None,
        "model": job.current_model if job else None,
        "actor_name": message.actor_name,
        "error_class": ERROR_CLASS,
        "error_message": scrub(_reason(message, failed_at)),
        "message": scrub_value(
            {
                # A delayed message names its ``.DQ`` queue; it belongs on the parent.
                "queue_name": message.queue_name.removesuffix(".DQ"),
                "actor_name": message.actor_name,
                "args": list(message.args),
                "kwargs": message.kwargs,
                "options": options,
                "message_id": message.message_id,
                "message_timestamp": message.message_timestamp,
            }
        ),
    }


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
