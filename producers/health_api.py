"""``/healthz`` and ``/readyz``: is the process up, and can it reach what it needs."""

from collections.abc import Callable

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from infra.brokers import ping_broker
from infra.circuits import circuit_states
from infra.db import ping
from producers.app_state import producer_of

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"description": "Something genq needs is down."}})
def readyz(request: Request) -> JSONResponse:
    """The database, the broker and Redis (limits, circuits, leases) answer; open
    circuits are reported, not fatal."""
    producer = producer_of(request)
    checks = {
        "database": _check(lambda: ping(producer.engine)),
        "broker": _check(lambda: ping_broker(producer.broker)),
        "redis": _check(producer.redis.ping),
    }
    ready = all(value == "ok" for value in checks.values())
    circuits = {}
    if checks["redis"] == "ok":
        states = circuit_states(producer.redis, list(producer.routes.by_name))
        circuits = {route: state for route, state in states.items() if state != "closed"}
    return JSONResponse(
        {"status": "ok" if ready else "unavailable", "checks": checks, "circuits": circuits},
        status_code=200 if ready else 503,
    )


def _check(probe: Callable[[], object]) -> str:
    try:
        probe()
    except Exception as exc:
        return f"error: {type(exc).__name__}"
    return "ok"
