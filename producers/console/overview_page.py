"""The overview: what is failing, where, and since when, refreshing by itself."""

import logging
from datetime import timedelta

import redis
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from producers.admin import import_dramatiq_letters
from producers.app_state import producer_of
from producers.console.render import page
from producers.console.session import Viewer
from schema.deadletters import parse_since
from store import dlq, overview, route_ops
from store.gauges import QueueLevel, queue_levels

logger = logging.getLogger(__name__)
router = APIRouter()


def _queues(request: Request) -> list[QueueLevel] | None:
    producer = producer_of(request)
    try:
        return queue_levels(producer.redis, producer.broker)
    except (redis.RedisError, OSError):
        logger.warning("console: could not read queue levels", exc_info=True)
        return None


@router.get("/console", response_class=HTMLResponse)
def overview_view(request: Request, user: Viewer) -> HTMLResponse:
    """Jobs by route and status, charts, open dead letters, circuits, queues, endpoints."""
    producer = producer_of(request)
    import_dramatiq_letters(producer)
    with producer.sessions() as session:
        hour = overview.activity(session, timedelta(hours=1))
        day = overview.activity(session, timedelta(days=1), buckets=24)
        letters = dlq.stats(session, parse_since("24h"))
        endpoints = overview.failing_endpoints(session)
    routes = route_ops.route_views(producer.routes, producer.redis)
    return page(
        request,
        "overview.html",
        user,
        hour={a.route: a for a in hour},
        day=day,
        letters=letters,
        troubled=[r for r in routes if r.circuit != "closed" or r.paused],
        queues=_queues(request),
        endpoints=endpoints,
    )
