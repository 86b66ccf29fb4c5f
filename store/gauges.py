"""Gauges read from the store, Redis and the broker when the API is scraped: jobs in flight
by state and route, open dead letters, circuit states, queue depths and ages."""

import json
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import dramatiq
import redis
from dramatiq.brokers.rabbitmq import RabbitmqBroker
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from infra.circuits import circuit_states
from schema.jobs import JobStatus
from schema.names import BROKER_NAMESPACE, JOBS_QUEUE, WEBHOOKS_QUEUE
from schema.tables import DeadLetter, Job

logger = logging.getLogger(__name__)

CIRCUIT_VALUES = {"closed": 0, "half_open": 1, "open": 2}
ACTIVE_STATUSES = (JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.WAITING)


class StoreCollector(Collector):
    """Gauges read at scrape time: jobs in flight by state and route, open dead letters,
    circuit states, and each queue's depth and the age of its oldest message."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        redis_client: redis.Redis,
        broker: dramatiq.Broker,
        routes: Iterable[str],
    ) -> None:
        self.sessions = sessions
        self.redis = redis_client
        self.broker = broker
        self.routes = list(routes)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        """Each source on its own: Redis being down leaves out only what Redis knows."""
        for source in (self._store, self._circuits, self._queues):
            try:
                families = list(source())
            except Exception:
                logger.warning("metrics: %s could not be read", source.__name__, exc_info=True)
                continue
            yield from families

    def _store(self) -> Iterator[GaugeMetricFamily]:
        jobs = GaugeMetricFamily(
            "genq_jobs_in_state", "Jobs queued, running or waiting now.", labels=["route", "status"]
        )
        letters = GaugeMetricFamily("genq_dead_letters_open", "Dead letters awaiting review.")
        with self.sessions() as session:
            counted = session.execute(
                select(Job.route, Job.status, func.count())
                .where(Job.status.in_(ACTIVE_STATUSES))
                .group_by(Job.route, Job.status)
            )
            for route, status, count in counted:
                jobs.add_metric([route, status], count)
            open_letters = session.scalar(
                select(func.count()).select_from(DeadLetter).where(DeadLetter.status == "open")
            )
        letters.add_metric([], open_letters or 0)
        return iter((jobs, letters))

    def _circuits(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "genq_circuit_state", "0 closed, 1 half open, 2 open.", labels=["route"]
        )
        for route, state in circuit_states(self.redis, self.routes).items():
            family.add_metric([route], CIRCUIT_VALUES.get(state, 0))
        return iter((family,))

    def _queues(self) -> Iterator[GaugeMetricFamily]:
        depth = GaugeMetricFamily(
            "genq_queue_depth", "Messages waiting in a broker queue.", labels=["queue"]
        )
        age = GaugeMetricFamily(
            "genq_queue_oldest_message_age_seconds",
            "Age of the oldest waiting message (Redis broker only).",
            labels=["queue"],
        )
        for level in queue_levels(self.redis, self.broker):
            depth.add_metric([level.queue], level.depth)
            if level.oldest_age_s is not None:
                age.add_metric([level.queue], level.oldest_age_s)
        return iter((depth, age))


@dataclass(frozen=True)
class QueueLevel:
    """A broker queue's waiting messages and the age of its oldest (Redis broker only)."""

    queue: str
    depth: int
    oldest_age_s: float | None


def queue_levels(client: redis.Redis, broker: dramatiq.Broker) -> list[QueueLevel]:
    """Every genq queue with its delay queue (and, on RabbitMQ, its dead-letter queue)."""
    levels: list[QueueLevel] = []
    for queue in (JOBS_QUEUE, WEBHOOKS_QUEUE):
        if isinstance(broker, RabbitmqBroker):
            counts = _rabbit_counts(broker, queue)
            names = (queue, f"{queue}.DQ", f"{queue}.XQ")
            levels += [QueueLevel(n, w, None) for n, w in zip(names, counts, strict=True)]
            continue
        for name in (queue, f"{queue}.DQ"):
            levels.append(QueueLevel(name, *_redis_queue(client, name)))
    return levels


def _redis_queue(client: redis.Redis, queue: str) -> tuple[int, float | None]:
    key = f"{BROKER_NAMESPACE}:{queue}"
    waiting = int(client.llen(key))
    oldest = client.lindex(key, 0)
    if oldest is None:
        return waiting, None if waiting else 0.0
    return waiting, _age_s(client, key, oldest)


def _rabbit_counts(broker: RabbitmqBroker, queue: str) -> tuple[int, int, int]:
    """Ready, delayed and dead messages. A lost channel is dropped, so the next scrape opens
    a new one."""
    try:
        ready, delayed, dead = broker.get_queue_message_counts(queue)
    except Exception:
        del broker.connection
        raise
    return ready, delayed, dead


def _age_s(client: redis.Redis, key: str, message_id: bytes) -> float | None:
    data: Any = client.hget(f"{key}.msgs", message_id)
    if data is None:
        return None
    seconds, micros = client.time()
    now_ms = seconds * 1000 + micros // 1000
    return max(0.0, (now_ms - json.loads(data)["message_timestamp"]) / 1000)
