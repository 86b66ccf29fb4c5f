"""The scheduler process: periodic work on APScheduler: relay the outbox, re-send jobs
whose worker died or whose poll message was lost."""

import logging

from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.interval import IntervalTrigger

from producers.broker import sending_broker
from producers.outbox import relay_pending
from schema.redis_conn import redis_url
from schema.settings import Settings
from schema.store import make_engine, make_sessions
from workers.sweeps import resend_stalled

logger = logging.getLogger(__name__)


def build_scheduler(settings: Settings) -> BlockingScheduler:
    """A scheduler whose outbox relay sends what producers and workers could not."""
    sessions = make_sessions(make_engine(settings.database_url_value))
    broker = sending_broker(redis_url(settings))

    def relay() -> None:
        sent = relay_pending(sessions, broker, grace_s=settings.relay_grace_s)
        if sent:
            logger.info("relay: sent %d outbox messages", sent)

    def sweep() -> None:
        resent = resend_stalled(sessions, broker)
        if resent:
            logger.info("sweep: re-sent %d stalled jobs", resent)

    scheduler = BlockingScheduler(timezone="UTC")
    scheduler.add_job(
        relay,
        IntervalTrigger(seconds=settings.relay_interval_s),
        id="relay_outbox",
        max_instances=1,
        coalesce=True,
    )
    scheduler.add_job(
        sweep,
        IntervalTrigger(seconds=settings.sweep_interval_s),
        id="resend_stalled",
        max_instances=1,
        coalesce=True,
    )
    return scheduler
