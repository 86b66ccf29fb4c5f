"""The scheduler process: periodic work on APScheduler, done by one leader among its
replicas (``workers/leader.py``): relay the outbox, re-send jobs whose worker died or
whose poll message was lost, end queued jobs past their deadline, and send webhook
deliveries whose next attempt is due."""

import logging
from collections.abc import Callable

from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.interval import IntervalTrigger
from prometheus_client import Counter, start_http_server

from infra.brokers import make_broker
from infra.db import make_engine, make_sessions
from infra.redis_conn import connect, redis_url
from schema.settings import Settings
from store.outbox import relay_pending
from workers.leader import Leadership
from workers.sweeps import expire_overdue, resend_stalled
from workers.webhooks.dispatch import dispatch_due

logger = logging.getLogger(__name__)

SWEPT = Counter("genq_scheduler_items", "What the leader's periodic work moved, by task.", ["task"])


def serve_metrics(port: int) -> None:
    """This process's /metrics (its sweep counts, and the jobs it expired) on ``port``; a
    second scheduler on the same host goes on without its own."""
    if not port:
        return
    try:
        start_http_server(port)
    except OSError as exc:
        logger.warning("scheduler metrics: port %d: %s; not serving /metrics", port, exc)


def build_scheduler(settings: Settings) -> tuple[BlockingScheduler, Leadership]:
    """A scheduler and its leadership; its periodic jobs run only while it leads."""
    sessions = make_sessions(make_engine(settings.database_url_value))
    broker = make_broker(settings, consumer=False)
    leadership = Leadership(connect(redis_url(settings)), settings.scheduler_lease_s)

    def when_leading(name: str, work: Callable[[], int]) -> Callable[[], None]:
        def run() -> None:
            if leadership.held and (count := work()):
                SWEPT.labels(name).inc(count)
                logger.info("%s: %d", name, count)

        return run

    periodic = {
        "relay_outbox": (
            settings.relay_interval_s,
            lambda: relay_pending(sessions, broker, grace_s=settings.relay_grace_s),
        ),
        "resend_stalled": (settings.sweep_interval_s, lambda: resend_stalled(sessions, broker)),
        "dispatch_webhooks": (
            settings.relay_interval_s,
            lambda: dispatch_due(sessions, broker),
        ),
        "expire_overdue": (
            settings.sweep_interval_s,
            lambda: expire_overdue(sessions, broker, settings),
        ),
    }
    scheduler = BlockingScheduler(timezone="UTC")
    scheduler.add_job(
        leadership.renew,
        IntervalTrigger(seconds=settings.scheduler_lease_s / 3),
        id="leadership",
        max_instances=1,
        coalesce=True,
    )
    for name, (every_s, work) in periodic.items():
        scheduler.add_job(
            when_leading(name, work),
            IntervalTrigger(seconds=every_s),
            id=name,
            max_instances=1,
            coalesce=True,
        )
    leadership.renew()
    return scheduler, leadership
