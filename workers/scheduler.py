"""The scheduler process: periodic work on APScheduler. For now it relays the outbox."""

import logging

from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.interval import IntervalTrigger

from producers.broker import sending_broker
from producers.outbox import relay_pending
from schema.redis_conn import redis_url
from schema.settings import Settings
from schema.store import make_engine, make_sessions

logger = logging.getLogger(__name__)


def build_scheduler(settings: Settings) -> BlockingScheduler:
    """A scheduler whose outbox relay sends what producers and workers could not."""
    sessions = make_sessions(make_engine(settings.database_url_value))
    broker = sending_broker(redis_url(settings))

    def relay() -> None:
        sent = relay_pending(sessions, broker, grace_s=settings.relay_grace_s)
        if sent:
            logger.info("relay: sent %d outbox messages", sent)

    scheduler = BlockingScheduler(timezone="UTC")
    scheduler.add_job(
        relay,
        IntervalTrigger(seconds=settings.relay_interval_s),
        id="relay_outbox",
        max_instances=1,
        coalesce=True,
    )
    return scheduler
