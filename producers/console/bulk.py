"""Bulk actions on dead letters with progress: a dry run stores the letters it chose as a
plan (in Redis, for ``PLAN_TTL_S``); confirming acts on exactly those, in chunks, on a
thread, recording progress the page polls. Each chunk is one ``store.dlq`` call, audited
under the operator's name."""

import logging
import threading
import uuid
from dataclasses import dataclass
from typing import Literal

import redis

from producers.producer import Producer
from schema.names import console_plan_key
from store import dlq

logger = logging.getLogger(__name__)

Action = Literal["requeue", "purge"]
CHUNK = 100
PLAN_TTL_S = 15 * 60


@dataclass(frozen=True)
class Progress:
    action: str
    total: int
    done: int
    skipped: int
    state: str

    @property
    def finished(self) -> bool:
        return self.state in ("done", "failed")


def plan(client: redis.Redis, action: Action, ids: list[str]) -> str:
    """Keep the letters a dry run chose; return the plan's id."""
    plan_id = uuid.uuid4().hex
    key = console_plan_key(plan_id)
    pipe = client.pipeline()
    pipe.hset(
        key,
        mapping={
            "action": action,
            "ids": "\n".join(ids),
            "total": len(ids),
            "done": 0,
            "skipped": 0,
            "state": "planned",
        },
    )
    pipe.expire(key, PLAN_TTL_S)
    pipe.execute()
    return plan_id


def progress(client: redis.Redis, plan_id: str) -> Progress | None:
    found = client.hgetall(console_plan_key(plan_id))
    if not found:
        return None
    values = {k.decode(): v.decode() for k, v in found.items()}
    return Progress(
        values["action"],
        int(values["total"]),
        int(values["done"]),
        int(values["skipped"]),
        values["state"],
    )


def start(producer: Producer, plan_id: str, actor: str) -> bool:
    """Start acting on a planned dry run once; False if it is unknown or already started."""
    key = console_plan_key(plan_id)
    if not producer.redis.exists(key) or not producer.redis.hsetnx(key, "started", "1"):
        return False
    producer.redis.hset(key, "state", "running")
    threading.Thread(
        target=_run, args=(producer, plan_id, actor), name=f"console-{plan_id}", daemon=True
    ).start()
    return True


def _run(producer: Producer, plan_id: str, actor: str) -> None:
    key = console_plan_key(plan_id)
    client = producer.redis
    action, raw = (bytes(v or b"").decode() for v in client.hmget(key, "action", "ids"))
    ids = raw.split("\n") if raw else []
    try:
        for at in range(0, len(ids), CHUNK):
            chunk = ids[at : at + CHUNK]
            if action == "requeue":
                result = dlq.requeue(
                    producer.sessions, producer.broker, producer.routes, chunk, actor
                )
            else:
                with producer.sessions.begin() as session:
                    result = dlq.purge(session, chunk, actor)
            client.hincrby(key, "done", result.count)
            client.hincrby(key, "skipped", len(result.skipped))
        client.hset(key, "state", "done")
    except Exception:
        logger.exception("console: %s of plan %s stopped", action, plan_id)
        client.hset(key, "state", "failed")
