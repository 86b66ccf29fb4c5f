"""``GET /metrics``: this API process's counters, and the gauges read from the store, Redis
and the broker at scrape time (jobs in flight, dead letters, circuits, queues)."""

import logging

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest

from producers.producer import Producer
from schema.metrics import StoreCollector

logger = logging.getLogger(__name__)

router = APIRouter(tags=["health"])


def store_registry(producer: Producer) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(
        StoreCollector(producer.sessions, producer.redis, producer.broker, producer.routes.by_name)
    )
    return registry


@router.get("/metrics", include_in_schema=False)
def metrics(request: Request) -> Response:
    """Prometheus text format. If the store or Redis cannot answer, their gauges are left
    out (and ``/readyz`` says why); the process's own counters are always there."""
    body = generate_latest(REGISTRY)
    try:
        body += generate_latest(request.app.state.store_metrics)
    except Exception:
        logger.warning("metrics: could not read the store, Redis or the broker", exc_info=True)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
