"""The scheduler process: periodic work on APScheduler, done by one leader among its
replicas (``workers/leader.py``): relay the outbox, fold the jobs' budget entries into
their tenants' budgets, re-send jobs whose worker died or whose poll message was lost,
end queued jobs past their deadline, send webhook deliveries whose next attempt is due,
and keep the broker honest: requeue dead workers' messages and re-send every open job
when the broker lost its data (``infra/broker_upkeep.py`` says why)."""

import logging
from collections.abc import Callable

import dramatiq
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.interval import IntervalTrigger
from prometheus_client import Counter, start_http_server
from sqlalchemy.orm import Session, sessionmaker

from infra.broker_upkeep import epoch_missing, maintainer, mark_epoch, requeue_orphans
from infra.brokers import make_broker
from infra.db import make_engine, make_sessions
from infra.redis_conn import connect, redis_url
from schema.names import JOBS_QUEUE, WEBHOOKS_QUEUE
from schema.settings import Settings
from store.budget_ledger import fold
from store.outbox import relay_pending
from workers.leader import Leadership
from workers.sweeps import expire_overdue, resend_open, resend_stalled
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


def broker_upkeep(
    sessions: sessionmaker[Session], broker: dramatiq.Broker, settings: Settings
) -> Callable[[], int]:
    """The leader's broker upkeep: dead workers' messages back on their queues; every open
    job re-sent once the broker is found to have lost its data. Returns how many it sent."""
    twin = maintainer(broker)

    def upkeep() -> int:
        if twin is not None:
            requeue_orphans(twin, [JOBS_QUEUE, WEBHOOKS_QUEUE])
        if not epoch_missing(broker):
            return 0
        logger.warning("broker: no epoch marker (lost its data?); re-sending every open job")
        sent = resend_open(sessions, broker, spread_s=settings.resend_spread_s)
        mark_epoch(broker)  # only now: a re-send cut short is tried again next time
        return sent

    return upkeep


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
        "fold_budgets": (settings.budget_fold_interval_s, lambda: fold(sessions)),
        "resend_stalled": (
            settings.sweep_interval_s,
            lambda: resend_stalled(sessions, broker, spread_s=settings.resend_spread_s),
        ),
        "broker_upkeep": (
            settings.broker_upkeep_interval_s,
            broker_upkeep(sessions, broker, settings),
        ),
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
