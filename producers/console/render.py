"""Rendering console pages: Jinja2 templates (autoescaped, so data shows as text), the
small inline SVG charts, and the answers to a missing session or a refused action."""

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jinja2
from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from producers.console.session import SIGN_IN, Refused, SignInRequired, User

HERE = Path(__file__).parent
templates = Jinja2Templates(
    env=jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
)


def sparkline(values: list[float], width: int = 120, height: int = 24) -> str:
    """SVG polyline points for ``values`` scaled into ``width`` x ``height``."""
    if not values:
        return ""
    top = max(values) or 1
    step = width / max(1, len(values) - 1)
    return " ".join(
        f"{i * step:.1f},{height - (v / top) * (height - 2) - 1:.1f}" for i, v in enumerate(values)
    )


def ago(moment: datetime | None) -> str:
    """How long ago ``moment`` was, roughly: 45s, 12m, 3h, 2d."""
    if moment is None:
        return "-"
    moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    seconds = max(0, int((datetime.now(UTC) - moment).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def when(moment: datetime | str | None) -> str:
    """A time to the second, in UTC: ``2026-12-02 10:40:58 UTC``; ``-`` for none."""
    if moment is None:
        return "-"
    moment = datetime.fromisoformat(moment) if isinstance(moment, str) else moment
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return f"{moment:%Y-%m-%d %H:%M:%S} UTC"


def pretty(value: Any) -> str:
    """``value`` as indented JSON text (escaped like any other text when shown)."""
    return json.dumps(value, indent=2, sort_keys=True, default=str)


templates.env.globals["sparkline"] = sparkline
templates.env.filters["pretty"] = pretty
templates.env.filters["when"] = when
templates.env.filters["ago"] = ago


def page(request: Request, name: str, user: User | None, **context: Any) -> HTMLResponse:
    """Render template ``name`` for ``user``; every page knows who is signed in."""
    return templates.TemplateResponse(request, name, {"user": user, **context})


def to_sign_in(request: Request, exc: Exception) -> Response:
    """No live session: htmx is told to load the sign-in page, a browser is redirected."""
    if request.headers.get("hx-request"):
        return Response(status_code=200, headers={"HX-Redirect": SIGN_IN})
    return RedirectResponse(SIGN_IN, status_code=303)


def refused(request: Request, exc: Exception) -> Response:
    """A viewer acting, or a form without its CSRF token: 403 with the reason as text."""
    message = exc.message if isinstance(exc, Refused) else "refused"
    return templates.TemplateResponse(
        request, "refused.html", {"user": None, "message": message}, status_code=403
    )


HANDLERS = {SignInRequired: to_sign_in, Refused: refused}
