"""Routes as the operator sees and steers them: limits, current use, circuit, pause and
fallback chains; pausing, resuming and closing a circuit by hand, each audited. The
console, the admin API and the command line all call these."""

from dataclasses import dataclass
from typing import Any

import redis
from sqlalchemy.orm import Session, sessionmaker

from infra import route_control
from infra.circuits import circuit_states
from schema.errors import NotFoundError
from schema.routes import Routes
from schema.tables import utcnow
from store.dlq import record


@dataclass(frozen=True)
class RouteView:
    name: str
    protocol: str
    rpm: int | None
    tpm: int | None
    max_in_flight: int | None
    use: route_control.RouteUse
    circuit: str
    paused: dict[str, Any] | None
    fallbacks: dict[str, list[str]]


class UnknownRouteError(NotFoundError):
    """No route by that name in the routes file."""


def route_views(routes: Routes, client: redis.Redis) -> list[RouteView]:
    """Every route with its limits, what it uses now, its circuit and whether it is paused."""
    names = sorted(routes.by_name)
    circuits = circuit_states(client, names)
    held = route_control.paused(client, names)
    views = []
    for name in names:
        route = routes.by_name[name]
        views.append(
            RouteView(
                name=name,
                protocol=str(route.protocol),
                rpm=route.rpm,
                tpm=route.tpm,
                max_in_flight=route.max_in_flight,
                use=route_control.use(client, name, route.rpm, route.tpm),
                circuit=circuits[name],
                paused=held.get(name),
                fallbacks={m: list(s.fallbacks) for m, s in route.models.items() if s.fallbacks},
            )
        )
    return views


def _known(routes: Routes, name: str) -> None:
    if name not in routes.by_name:
        raise UnknownRouteError(f"no route {name!r}")


def pause(
    sessions: sessionmaker[Session], client: redis.Redis, routes: Routes, name: str, actor: str
) -> None:
    """Hold the route's jobs until resumed; audited."""
    _known(routes, name)
    with sessions.begin() as session:
        record(session, actor, "route.pause", {"route": name}, [name])
        route_control.pause(client, name, actor, utcnow())


def resume(
    sessions: sessionmaker[Session], client: redis.Redis, routes: Routes, name: str, actor: str
) -> None:
    """Let the route's jobs go again; audited."""
    _known(routes, name)
    with sessions.begin() as session:
        record(session, actor, "route.resume", {"route": name}, [name])
        route_control.resume(client, name)


def close_circuit(
    sessions: sessionmaker[Session], client: redis.Redis, routes: Routes, name: str, actor: str
) -> None:
    """Close the route's circuit by hand; audited with the state it was in."""
    _known(routes, name)
    with sessions.begin() as session:
        was = circuit_states(client, [name])[name]
        record(session, actor, "route.close_circuit", {"route": name, "was": was}, [name])
        route_control.close_circuit(client, name)


ACTIONS = {"pause": pause, "resume": resume, "close-circuit": close_circuit}
"""The route actions by the name the console, the admin API and the CLI use."""
