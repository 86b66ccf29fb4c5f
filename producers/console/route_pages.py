"""Routes: limits, current use, circuit, pause and fallback chain; pause, resume and close
a circuit by hand (each audited)."""

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from producers.app_state import producer_of
from producers.console.render import page
from producers.console.session import Operator, Viewer
from store import route_ops

router = APIRouter(prefix="/console/routes")


@router.get("", response_class=HTMLResponse)
def routes_view(request: Request, user: Viewer) -> HTMLResponse:
    """Every route with its limits and state."""
    producer = producer_of(request)
    return page(
        request, "routes.html", user, routes=route_ops.route_views(producer.routes, producer.redis)
    )


@router.post("/{name}/{action}")
def act(request: Request, user: Operator, name: str, action: str) -> Response:
    """Pause, resume or close the circuit of route ``name``."""
    producer = producer_of(request)
    chosen = route_ops.ACTIONS.get(action)
    if chosen is None:
        return page(request, "refused.html", user, message=f"no such action {action!r}")
    try:
        chosen(producer.sessions, producer.redis, producer.routes, name, user.identity.actor)
    except route_ops.UnknownRouteError as exc:
        return page(request, "refused.html", user, message=str(exc))
    return RedirectResponse(f"/console/routes#{name}", status_code=303)
