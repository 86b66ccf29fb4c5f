"""A provider key of a shape no pattern knows, echoed in full by the provider's error, leaves
genq nowhere: not in the job, its attempts, its dead letter, ``genq jobs show``, the
webhook the customer receives, API responses, logs or Sentry events."""

import io
import json
import logging
import secrets
from collections.abc import Iterator

import pytest
import sentry_sdk
from pydantic import SecretStr
from sqlalchemy import select
from sqlalchemy.orm import Session

from infra.error_reports import init_error_reports
from infra.logs import ContextFilter, formatter
from infra.scrub import REDACTED
from schema.routes import Routes
from schema.tables import DeadLetter, JobAttempt
from tests.conftest import sim_routes
from tests.infra.test_error_reports import Captured
from tests.store.test_dlq import genq
from tests.workers.test_webhooks import add_endpoint, run_job


@pytest.fixture
def odd_key() -> str:
    """A fresh key in a format no shape pattern knows (not sk-, r8_, gq_, whsec_...)."""
    return f"zz-9f3a{secrets.token_hex(16)}"


@pytest.fixture
def routes(sim, odd_key: str, monkeypatch: pytest.MonkeyPatch) -> Routes:
    """The simulator's routes, their provider key the odd one, set before any process
    (producer, worker) starts and registers it."""
    monkeypatch.setenv("GENQ_TEST_SIM_KEY", odd_key)
    return sim_routes(sim.url)


@pytest.fixture
def logs() -> Iterator[io.StringIO]:
    """Every line any logger writes meanwhile, through genq's filter, as JSON lines."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter("json"))
    handler.addFilter(ContextFilter())
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    yield stream
    root.removeHandler(handler)
    root.setLevel(level)


@pytest.fixture
def sentry(runtime) -> Iterator[Captured]:
    transport = Captured()
    runtime.settings.sentry_dsn = SecretStr("https://public@sentry.invalid/1")
    assert init_error_reports(runtime.settings, "worker", transport=transport)
    yield transport
    sentry_sdk.init()


def test_an_echoed_provider_key_of_any_shape_is_redacted_everywhere(
    odd_key, client, auth, engine, worker, hooks, sim_control, logs, sentry, cli_env
) -> None:
    sim_control.config(api_key="sk-the-one-the-provider-wants", echo_keys=True)
    name = hooks.new()
    endpoint = add_endpoint(client, auth, hooks.url(name))
    hooks.configure(name, [endpoint["secret"]])

    job = run_job(client, auth)
    received = hooks.wait(name, "verified", 1)["requests"]
    shown = genq("jobs", "show", job["id"])
    missing = client.get(f"/v1/jobs/{odd_key}", headers=auth)
    logging.getLogger("genq.test").error("the provider said: %s", f"bad key {odd_key}")
    sentry_sdk.capture_exception(RuntimeError(f"provider refused {odd_key}"))
    sentry_sdk.flush()
    with Session(engine) as session:
        attempts = session.scalars(
            select(JobAttempt.error_message).where(JobAttempt.job_id == job["id"])
        ).all()
        letters = session.scalars(select(DeadLetter).where(DeadLetter.job_id == job["id"])).all()

    assert job["status"] == "dead_lettered"
    assert job["error"]["message"].startswith(f"HTTP 401: Incorrect API key provided: {REDACTED}.")
    assert shown.exit_code == 0, shown.output
    assert missing.status_code == 404
    assert len(attempts) == 1 and len(letters) == 1
    assert len(sentry.events) >= 2
    everything = {
        "job": json.dumps(job),
        "attempts": json.dumps(attempts),
        "dead letter": json.dumps(
            [[d.error_message, d.message, d.attempts] for d in letters], default=str
        ),
        "jobs show": shown.output,
        "webhook bodies": json.dumps(received),
        "api error": missing.text,
        "logs": logs.getvalue(),
        "sentry": json.dumps(sentry.events, default=str),
    }
    for where, text in everything.items():
        assert odd_key not in text, where
        assert REDACTED in text, where
