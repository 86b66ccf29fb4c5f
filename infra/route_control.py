"""An operator's hand on a route, in Redis: pause and resume it, close its circuit, and
read how much of its rate and in-flight slots is in use. Workers honour the pause (see
``workers/breaker.py``); the console, the admin API and the CLI act through here."""

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import redis

from infra.circuits import state_key
from schema.names import route_hold_key, route_limit_key


@dataclass(frozen=True)
class RouteUse:
    """What a route is using now: requests and tokens of the last minute's budget (by the
    rate limiter's own state), calls in flight, and seconds left of a 429's hold."""

    rpm_used: int
    tpm_used: int
    in_flight: int
    throttled_s: float


def pause(client: redis.Redis, route: str, by: str, at: datetime) -> None:
    """Hold every job for ``route`` until it is resumed."""
    client.set(route_hold_key(route), json.dumps({"by": by, "at": at.isoformat()}))


def resume(client: redis.Redis, route: str) -> bool:
    """Let ``route``'s jobs go again; whether it was paused."""
    return bool(client.delete(route_hold_key(route)))


def paused(client: redis.Redis, routes: list[str]) -> dict[str, dict[str, Any]]:
    """The paused routes among ``routes``, each with who paused it and when."""
    pipe = client.pipeline(transaction=False)
    for route in routes:
        pipe.get(route_hold_key(route))
    return {
        route: json.loads(held)
        for route, held in zip(routes, pipe.execute(), strict=True)
        if held is not None
    }


def close_circuit(client: redis.Redis, route: str) -> None:
    """Close ``route``'s circuit now and forget its recent failures."""
    key = state_key(route)
    client.delete(key, f"{key}:probe", f"{key}:window")


def use(client: redis.Redis, route: str, rpm: int | None, tpm: int | None) -> RouteUse:
    """How much of ``route``'s limits is taken now."""
    seconds, micros = client.time()
    now_ms = seconds * 1000 + micros / 1000
    pipe = client.pipeline(transaction=False)
    pipe.get(route_limit_key(route, "rpm"))
    pipe.get(route_limit_key(route, "tpm"))
    pipe.zcount(route_limit_key(route, "inflight"), now_ms, "+inf")
    pipe.get(route_limit_key(route, "pause"))
    rpm_tat, tpm_tat, in_flight, hold_until = pipe.execute()
    return RouteUse(
        rpm_used=_taken(rpm_tat, rpm, now_ms),
        tpm_used=_taken(tpm_tat, tpm, now_ms),
        in_flight=int(in_flight),
        throttled_s=max(0.0, (float(hold_until) - now_ms) / 1000) if hold_until else 0.0,
    )


def _taken(tat: bytes | None, limit: int | None, now_ms: float) -> int:
    """A GCRA bucket's use: the time its TAT runs ahead of now, at the refill rate."""
    if tat is None or not limit:
        return 0
    return min(limit, round(max(0.0, float(tat) - now_ms) * limit / 60_000))
