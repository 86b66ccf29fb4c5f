"""The operations console at /console: server-rendered pages for the on-call engineer."""

import secrets

from fastapi import FastAPI, Request, Response
from fastapi.staticfiles import StaticFiles
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint

from producers.console import (
    auth_pages,
    deadletter_pages,
    job_pages,
    overview_page,
    route_pages,
    tenant_pages,
    webhook_pages,
)
from producers.console.render import HANDLERS, HERE
from producers.console.session import Sessions
from schema.settings import Settings

# Only the console's own files: no inline script, no other origin.
POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)


async def _guard(request: Request, call_next: RequestResponseEndpoint) -> Response:
    response = await call_next(request)
    if request.url.path.startswith("/console"):
        response.headers["Content-Security-Policy"] = POLICY
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "same-origin"
        response.headers.setdefault("Cache-Control", "no-store")
    return response


def install(app: FastAPI, settings: Settings) -> None:
    """Serve the console on ``app``: its pages, its static files and its sessions."""
    secret = settings.console_secret
    app.state.console_sessions = Sessions(
        secret.get_secret_value() if secret else secrets.token_urlsafe(32),
        settings.console_session_s,
    )
    app.mount("/console/static", StaticFiles(directory=HERE / "static"), name="console-static")
    for module in (
        auth_pages,
        overview_page,
        deadletter_pages,
        job_pages,
        route_pages,
        webhook_pages,
        tenant_pages,
    ):
        app.include_router(module.router, include_in_schema=False)
    for exc, handler in HANDLERS.items():
        app.add_exception_handler(exc, handler)
    app.add_middleware(BaseHTTPMiddleware, dispatch=_guard)
