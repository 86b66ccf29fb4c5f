"""Where circuit-breaker state lives in Redis, so the API can report what workers decided."""

import redis

from schema.names import BROKER_NAMESPACE

PREFIX = f"{BROKER_NAMESPACE}:cb"


def state_key(route: str) -> str:
    return f"{PREFIX}:{route}"


def circuit_states(client: redis.Redis, routes: list[str]) -> dict[str, str]:
    """``closed``, ``open`` or ``half_open`` for each route."""
    pipe = client.pipeline(transaction=False)
    for route in routes:
        pipe.hget(state_key(route), "state")
    return {
        route: (state.decode() if state else "closed")
        for route, state in zip(routes, pipe.execute(), strict=True)
    }
