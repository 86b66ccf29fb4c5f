"""The operations console at /console: server-rendered pages for the on-call engineer."""

import secrets

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

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


class ConsoleHeaders:
    """The console's security headers on its responses; every other request passes
    through untouched (a plain ASGI middleware, so the API's requests pay nothing)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/console"):
            await self.app(scope, receive, send)
            return

        async def send_guarded(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers["Content-Security-Policy"] = POLICY
                headers["X-Content-Type-Options"] = "nosniff"
                headers["Referrer-Policy"] = "same-origin"
                headers.setdefault("Cache-Control", "no-store")
            await send(message)

        await self.app(scope, receive, send_guarded)


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
    app.add_middleware(ConsoleHeaders)
