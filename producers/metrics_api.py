"""``GET /metrics``: this API process's counters, and the gauges read from the store, Redis
and the broker at scrape time (jobs in flight, dead letters, circuits, queues)."""

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest

from producers.producer import Producer
from store.gauges import StoreCollector

router = APIRouter(tags=["health"])


def store_registry(producer: Producer) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(
        StoreCollector(producer.sessions, producer.redis, producer.broker, producer.routes.by_name)
    )
    return registry


@router.get("/metrics", include_in_schema=False)
def metrics(request: Request) -> Response:
    """Prometheus text format. If the store, Redis or the broker cannot answer, the gauges
    read from it are left out (and ``/readyz`` says why); the rest is always there."""
    body = generate_latest(REGISTRY) + generate_latest(request.app.state.store_metrics)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
