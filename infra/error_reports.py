"""Sentry for every genq process, enabled by ``SENTRY_DSN``.

Events carry the job's fields as tags (``workers/context.py`` binds them), and pass
through ``scrub_event`` before they leave: whatever an exception message, a local
variable or a request header held that looks like a key or a password is redacted.
"""

import logging
from typing import Any, Literal

import sentry_sdk
from sentry_sdk.integrations import Integration
from sentry_sdk.integrations.logging import LoggingIntegration
from sentry_sdk.transport import Transport

from infra.scrub import scrub_value
from schema.settings import Settings

Component = Literal["api", "worker", "scheduler"]


def scrub_event(event: dict[str, Any], hint: dict[str, Any]) -> dict[str, Any]:
    scrubbed: dict[str, Any] = scrub_value(event)
    return scrubbed


def init_error_reports(
    settings: Settings, component: Component, *, transport: Transport | None = None
) -> bool:
    """Start Sentry if a DSN is set (before the broker or app is built, so the Dramatiq and
    FastAPI integrations can hook in); return whether it runs."""
    if settings.sentry_dsn is None or not settings.sentry_dsn.get_secret_value():
        return False
    sentry_sdk.init(
        dsn=settings.sentry_dsn.get_secret_value(),
        environment=settings.sentry_environment,
        traces_sample_rate=settings.sentry_traces_sample_rate,
        before_send=scrub_event,  # type: ignore[arg-type]
        before_send_transaction=scrub_event,  # type: ignore[arg-type]
        integrations=_integrations(component),
        transport=transport,
    )
    sentry_sdk.get_global_scope().set_tag("component", component)
    return True


def _integrations(component: Component) -> list[Integration]:
    found: list[Integration] = [LoggingIntegration(level=logging.INFO, event_level=logging.ERROR)]
    if component == "worker":
        from sentry_sdk.integrations.dramatiq import DramatiqIntegration

        found.append(DramatiqIntegration())
    elif component == "api":
        from sentry_sdk.integrations.fastapi import FastApiIntegration
        from sentry_sdk.integrations.starlette import StarletteIntegration

        found += [StarletteIntegration(), FastApiIntegration()]
    return found
