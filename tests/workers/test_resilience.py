"""Edges the happy paths miss: forgotten queued jobs, secrets in provider errors, probes
that never reach the provider, requests larger than a tenant's share, polls that keep
failing past the deadline, a Redis failure after a paid call."""

from datetime import timedelta

import dramatiq
import httpx
import pytest
import redis
from sqlalchemy import update

from infra.circuits import circuit_states
from schema.routes import Route
from schema.tables import Job, utcnow
from tests.helpers import override
from tests.producers.test_api import CHAT
from tests.waiting import eventually
from tests.workers.test_providers import VIDEO
from workers import execution
from workers.limits import Verdict
from workers.providers import ErrorClass, ProviderError
from workers.providers.errors import from_transport
from workers.sweeps import resend_stalled

on_postgresql = pytest.mark.parametrize("engine", ["postgresql"], indirect=True)


def age(runtime, job_id: str, **values) -> None:  # type: ignore[no-untyped-def]
    with runtime.sessions.begin() as session:
        session.execute(update(Job).where(Job.id == job_id).values(**values))


@on_postgresql
def test_a_queued_job_whose_message_was_lost_is_sent_again(client, auth, runtime) -> None:
    job_id = client.post("/v1/jobs", json=CHAT, headers=auth).json()["id"]
    runtime.broker.flush_all()
    age(runtime, job_id, updated_at=utcnow() - timedelta(hours=1))

    assert resend_stalled(runtime.sessions, runtime.broker) == 1
    assert resend_stalled(runtime.sessions, runtime.broker) == 0
    execution.run_job(runtime, job_id)
    assert client.get(f"/v1/jobs/{job_id}", headers=auth).json()["status"] == "succeeded"


def test_provider_errors_never_carry_a_key(monkeypatch) -> None:
    leaked = httpx.LocalProtocolError("Illegal header value b'Bearer sk-proj-abcdefgh12345678\\n'")
    error = ProviderError(
        ErrorClass.BAD_REQUEST, "key sk-ant-api03-secretsecret rejected", retryable=False
    )

    assert "sk-proj-abcdefgh12345678" not in from_transport(leaked).message
    assert "secretsecret" not in error.message
    monkeypatch.setenv("SOME_KEY", "  sk-with-newline\n")
    route = Route(name="r", protocol="openai-chat", base_url="http://127.0.0.1:1/v1",
                  api_key_env="SOME_KEY", models=["m"])  # fmt: skip
    assert route.api_key().get_secret_value() == "sk-with-newline"


@on_postgresql
def test_a_probe_that_never_calls_the_provider_does_not_close_the_circuit(
    client, auth, routes, runtime, sim_control
) -> None:
    override(routes, "openai", max_attempts=1, breaker_failures=1, breaker_cooldown_s=0.05)
    sim_control.faults({"endpoint": "chat.completions", "kind": "status", "code": 500, "count": 1})
    first, late = (client.post("/v1/jobs", json=CHAT, headers=auth).json()["id"] for _ in "ab")
    execution.run_job(runtime, first)
    assert circuit_states(runtime.broker.client, ["openai"]) == {"openai": "open"}
    age(runtime, late, deadline_at=utcnow() - timedelta(seconds=1))

    def probe_allowed() -> bool:  # once the short cool-down is over
        answer = runtime.limits.check(routes.by_name["openai"], "gpt-4o-mini", "t", (1, 1), False)
        if answer.hold is None:
            return False
        runtime.limits.give_back(answer.hold)
        return answer.hold.probe

    eventually(probe_allowed, lambda allowed: allowed)
    execution.run_job(runtime, late)

    assert circuit_states(runtime.broker.client, ["openai"]) != {"openai": "closed"}
    assert runtime.broker.client.exists("genq:cb:openai:probe") == 0


@on_postgresql
def test_a_request_larger_than_a_tenants_share_still_books(routes, runtime) -> None:
    route = routes.by_name["openai"].model_copy(update={"tpm": 1000})
    for tenant in ("t1", "t2", "t3", "t4"):
        assert runtime.limits.check(route, "gpt-4o-mini", tenant, (1, 1), False).hold is not None

    answer = runtime.limits.check(route, "gpt-4o-mini", "t1", (5000, 5000), False)

    assert answer.verdict is not Verdict.BEYOND_HORIZON


@on_postgresql
def test_a_poll_failing_past_the_deadline_ends_the_job(client, auth, runtime, sim_control):
    sim_control.config(time_scale=0.01, fixed_duration_s=300)
    job_id = client.post("/v1/jobs", json=VIDEO, headers=auth).json()["id"]
    execution.run_job(runtime, job_id)
    sim_control.faults({"endpoint": "videos.retrieve", "kind": "status", "code": 503})
    age(runtime, job_id, deadline_at=utcnow() - timedelta(seconds=1))

    execution.poll_job(runtime, job_id)

    job = client.get(f"/v1/jobs/{job_id}", headers=auth).json()
    assert (job["status"], job["error"]["type"]) == ("failed", "deadline_exceeded")
    assert sim_control.calls("videos.delete") == 1


@on_postgresql
def test_a_redis_failure_after_a_paid_call_keeps_the_result(
    client, auth, runtime, monkeypatch
) -> None:
    job_id = client.post("/v1/jobs", json=CHAT, headers=auth).json()["id"]
    monkeypatch.setattr(runtime.limits, "settle", redis_down)
    monkeypatch.setattr(runtime.limits, "give_back", redis_down)

    execution.run_job(runtime, job_id)

    job = client.get(f"/v1/jobs/{job_id}", headers=auth).json()
    assert job["status"] == "succeeded"
    assert job["output"]["text"]


@on_postgresql
def test_a_redis_failure_after_a_failed_call_keeps_the_attempt(
    client, auth, runtime, sim_control, monkeypatch
) -> None:
    sim_control.faults({"endpoint": "chat.completions", "kind": "status", "code": 500, "count": 1})
    job_id = client.post("/v1/jobs", json=CHAT, headers=auth).json()["id"]
    monkeypatch.setattr(runtime.limits, "settle", redis_down)

    execution.run_job(runtime, job_id)

    job = client.get(f"/v1/jobs/{job_id}", headers=auth).json()
    assert (job["status"], job["attempts"]) == ("queued", 1)


def redis_down(*args, **kwargs):  # type: ignore[no-untyped-def]
    raise redis.ConnectionError("redis went away")


@on_postgresql
def test_a_job_canceled_during_its_async_submit_is_canceled_at_the_provider(
    client, auth, runtime, sim_control
) -> None:
    sim_control.config(time_scale=0.01, fixed_duration_s=300)
    job_id = client.post("/v1/jobs", json=VIDEO, headers=auth).json()["id"]
    adapter = runtime.adapter

    def cancel_during_submit(route):  # type: ignore[no-untyped-def]
        client.post(f"/v1/jobs/{job_id}/cancel", headers=auth)
        return adapter(route)

    runtime.adapter = cancel_during_submit  # type: ignore[method-assign]
    execution.run_job(runtime, job_id)
    runtime.adapter = adapter  # type: ignore[method-assign]

    # Started only now, so it cannot take the job before this test runs it.
    worker = dramatiq.Worker(runtime.broker, worker_timeout=50, worker_threads=4)
    worker.start()
    try:
        eventually(lambda: sim_control.calls("videos.delete"), lambda n: n == 1)
    finally:
        worker.stop()
    assert client.get(f"/v1/jobs/{job_id}", headers=auth).json()["status"] == "canceled"
