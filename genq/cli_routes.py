"""``genq routes …``: see each route's limits, use and state; pause, resume, close a circuit.

The same store services as the console's Routes page and ``/admin/routes``; each action is
audited under ``--actor`` (default ``cli:<user>``).
"""

from typing import Annotated

import typer

from genq.cli_support import Actor, default_actor, fail, open_store
from schema.settings import Settings

routes = typer.Typer(no_args_is_help=True, help="See and steer provider routes.")

Name = Annotated[str, typer.Argument(help="The route, as named in the routes file.")]


@routes.command("list")
def list_routes() -> None:
    """Each route's use of its limits, circuit and pause."""
    from infra.redis_conn import connect, redis_url
    from schema.routes import load_routes
    from store.route_ops import route_views

    settings = Settings()
    for r in route_views(load_routes(settings.routes_file), connect(redis_url(settings))):
        state = f"paused by {r.paused['by']}" if r.paused else "running"
        typer.echo(
            f"{r.name}\tcircuit {r.circuit}\t{state}\trpm {r.use.rpm_used}/{r.rpm or '-'}"
            f"\ttpm {r.use.tpm_used}/{r.tpm or '-'}\tin flight {r.use.in_flight}"
            f"/{r.max_in_flight or '-'}"
        )


def _act(action: str, name: str, actor: str | None) -> None:
    from infra.redis_conn import connect, redis_url
    from schema.routes import load_routes
    from store.route_ops import ACTIONS, UnknownRouteError

    settings = Settings()
    with open_store(settings) as store:
        try:
            ACTIONS[action](
                store.sessions,
                connect(redis_url(settings)),
                load_routes(settings.routes_file),
                name,
                actor or default_actor(),
            )
        except UnknownRouteError as exc:
            fail(str(exc))
    typer.echo(f"{action} {name}: done")


@routes.command("pause")
def pause(name: Name, actor: Actor = None) -> None:
    """Hold every job for the route until it is resumed."""
    _act("pause", name, actor)


@routes.command("resume")
def resume(name: Name, actor: Actor = None) -> None:
    """Let the route's jobs go again."""
    _act("resume", name, actor)


@routes.command("close-circuit")
def close_circuit(name: Name, actor: Actor = None) -> None:
    """Close the route's circuit now and forget its recent failures."""
    _act("close-circuit", name, actor)
