"""Sentry through a local transport: an event from a broken job carries the job's fields as
tags and no secret."""

import json
from collections.abc import Iterator
from typing import Any

import pytest
import sentry_sdk
from pydantic import SecretStr
from sentry_sdk.envelope import Envelope
from sentry_sdk.transport import Transport

from infra.error_reports import init_error_reports
from tests.producers.test_api import CHAT
from tests.waiting import eventually
from workers import execution

SECRET = "sk-proj-4fJ9kQ2mZx7LrT1vYb8NcW3eHs6uPa0D"


class Captured(Transport):
    """Keeps what would be sent to Sentry."""

    def __init__(self) -> None:
        super().__init__()
        self.events: list[dict[str, Any]] = []

    def capture_envelope(self, envelope: Envelope) -> None:
        event = envelope.get_event()
        if event is not None:
            self.events.append(event)


@pytest.fixture
def sentry(runtime) -> Iterator[Captured]:
    transport = Captured()
    runtime.settings.sentry_dsn = SecretStr("https://public@sentry.invalid/1")
    assert init_error_reports(runtime.settings, "worker", transport=transport)
    yield transport
    sentry_sdk.init()


def test_no_dsn_no_sentry(settings) -> None:
    assert not init_error_reports(settings, "api")


@pytest.mark.parametrize("engine", ["postgresql"], indirect=True)
def test_an_event_carries_the_job_and_no_secret(
    client, auth, runtime, worker, sentry: Captured, monkeypatch
) -> None:
    def broken_adapter(route: Any) -> Any:
        api_key = SECRET  # a local variable Sentry would show with the frame
        raise RuntimeError(f"adapter exploded while using {api_key}")

    monkeypatch.setattr(runtime, "adapter", broken_adapter)

    job = client.post("/v1/jobs", json=CHAT, headers=auth).json()
    eventually(lambda: sentry.events, lambda events: len(events) >= 1)

    (event,) = [e for e in sentry.events if e.get("tags", {}).get("job_id") == job["id"]]
    assert event["tags"]["tenant_id"].startswith("ten_")
    assert (event["tags"]["route"], event["tags"]["model"]) == ("openai", "openai/gpt-4o-mini")
    assert event["tags"]["attempt"] == "1"
    assert event["tags"]["component"] == "worker"
    written = json.dumps(event)
    assert "RuntimeError" in written
    assert SECRET not in written
    assert "[redacted]" in written


@pytest.mark.parametrize("engine", ["postgresql"], indirect=True)
def test_an_exception_escaping_an_actor_is_reported_with_the_job(
    client, auth, runtime, worker, sentry: Captured, monkeypatch
) -> None:
    def store_down(runtime: Any, job_id: str, booked: bool = False) -> None:
        raise RuntimeError(f"database said no to postgresql://genq:{SECRET}@db/genq")

    monkeypatch.setattr(execution, "run_job", store_down)

    job = client.post("/v1/jobs", json=CHAT, headers=auth).json()
    eventually(lambda: sentry.events, lambda events: len(events) >= 1)

    event = sentry.events[0]
    assert event["tags"]["job_id"] == job["id"]
    assert event["exception"]["values"][-1]["type"] == "RuntimeError"
    assert SECRET not in json.dumps(event)
