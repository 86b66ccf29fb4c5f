"""The worker: one chat job through Redis and the simulator into the store, exactly once."""

import logging
import threading

import dramatiq
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from infra.brokers import make_broker
from schema.jobs import TERMINAL_STATUSES as TERMINAL
from schema.names import JOBS_QUEUE, RATE_LIMIT_PREFIX, RUN_JOB
from schema.tables import Job, JobAttempt
from store import lifecycle, outbox
from store.moves import Claim
from tests.helpers import override
from tests.producers.test_api import CHAT
from tests.waiting import eventually
from workers import execution
from workers.runtime import Runtime, build_runtime


def job_of(client: TestClient, auth, job_id: str, until: set[str]) -> dict:
    return eventually(
        lambda: client.get(f"/v1/jobs/{job_id}", headers=auth).json(),
        lambda job: job["status"] in until,
    )


def attempts_of(runtime: Runtime, job_id: str) -> list[JobAttempt]:
    with runtime.sessions() as session:
        return list(
            session.scalars(
                select(JobAttempt).where(JobAttempt.job_id == job_id).order_by(JobAttempt.number)
            )
        )


def test_chat_job_succeeds_with_output_usage_and_attempt(client, auth, worker, runtime) -> None:
    job_id = client.post("/v1/jobs", json=CHAT, headers=auth).json()["id"]

    job = job_of(client, auth, job_id, TERMINAL)

    assert job["status"] == "succeeded"
    assert job["output"]["text"]
    assert job["output"]["finish_reason"] in ("stop", "length")
    assert job["usage"]["input_tokens"] > 0
    assert job["usage"]["output_tokens"] > 0
    assert job["attempts"] == 1
    assert job["started_at"] <= job["finished_at"]
    (attempt,) = attempts_of(runtime, job_id)
    assert attempt.status == "succeeded"
    assert attempt.provider_request_id.startswith("req_")
    assert attempt.usage == job["usage"]


def test_redelivered_message_does_not_run_a_finished_job_again(
    client, auth, worker, runtime, sim_calls
) -> None:
    job_id = client.post("/v1/jobs", json=CHAT, headers=auth).json()["id"]
    job_of(client, auth, job_id, {"succeeded"})
    assert sim_calls() == 1

    with runtime.sessions.begin() as session:
        row = outbox.stage(session, JOBS_QUEUE, RUN_JOB, {"job_id": job_id})
        session.flush()
    outbox.send(runtime.sessions, runtime.broker, [row])
    runtime.broker.join(JOBS_QUEUE, timeout=10_000)
    worker.join()

    assert sim_calls() == 1
    assert len(attempts_of(runtime, job_id)) == 1


def test_permanent_provider_error_fails_at_once(client, auth, worker, runtime, sim_calls) -> None:
    body = {**CHAT, "input": {**CHAT["input"], "max_tokens": 10**6}}
    job_id = client.post("/v1/jobs", json=body, headers=auth).json()["id"]

    job = job_of(client, auth, job_id, TERMINAL)

    assert job["status"] == "failed"
    assert job["error"]["type"] == "bad_request"
    assert "context length" in job["error"]["message"]
    assert sim_calls() == 1
    (attempt,) = attempts_of(runtime, job_id)
    assert (attempt.status, attempt.http_status, attempt.error_class) == (
        "failed",
        400,
        "bad_request",
    )


def test_retryable_error_is_retried_then_dead_lettered_when_attempts_run_out(
    client, auth, worker, runtime, routes, monkeypatch
) -> None:
    dead = routes.by_name["openai"].model_copy(
        update={"base_url": "http://127.0.0.1:9/v1", "max_attempts": 2}
    )
    runtime.routes.by_name["openai"] = dead
    monkeypatch.setattr("workers.execution.policy.retry_delay_s", lambda attempt, after: 0.05)
    job_id = client.post("/v1/jobs", json=CHAT, headers=auth).json()["id"]

    job = job_of(client, auth, job_id, TERMINAL)

    assert job["status"] == "dead_lettered"
    assert job["error"]["type"] == "connect_error"
    assert job["attempts"] == 2
    assert [a.error_class for a in attempts_of(runtime, job_id)] == ["connect_error"] * 2


def test_canceled_while_running_keeps_the_cancel(client, auth, runtime) -> None:
    job_id = client.post("/v1/jobs", json=CHAT, headers=auth).json()["id"]
    adapter = runtime.adapter

    def cancel_during_call(route):  # type: ignore[no-untyped-def]
        client.post(f"/v1/jobs/{job_id}/cancel", headers=auth)
        return adapter(route)

    runtime.adapter = cancel_during_call  # type: ignore[method-assign]
    execution.run_job(runtime, job_id)

    job = client.get(f"/v1/jobs/{job_id}", headers=auth).json()
    assert job["status"] == "canceled"
    assert job["output"] is None
    assert [a.status for a in attempts_of(runtime, job_id)] == ["succeeded"]


def claim(runtime: Runtime, job_id: str, lease_s: float) -> Claim | None:
    """Claim a job as a worker would, without running it."""
    with runtime.sessions.begin() as session:
        return lifecycle.claim(session, job_id, lease_s=lease_s, taking_over=True)


def test_job_held_by_a_live_lease_is_rechecked_when_the_lease_ends(client, auth, runtime) -> None:
    job_id = client.post("/v1/jobs", json=CHAT, headers=auth).json()["id"]
    assert claim(runtime, job_id, lease_s=60) is not None

    runtime.broker.flush_all()
    execution.run_job(runtime, job_id)

    delayed = runtime.broker.client.hlen(f"genq:{JOBS_QUEUE}.DQ.msgs")
    assert delayed == 1
    with runtime.sessions() as session:
        assert session.scalar(select(Job.attempts).where(Job.id == job_id)) == 1


@pytest.mark.parametrize("actor_name", [RUN_JOB])
def test_actors_are_declared_on_the_jobs_queue(runtime, actor_name) -> None:
    actor = runtime.broker.get_actor(actor_name)
    assert isinstance(actor, dramatiq.Actor)
    assert actor.queue_name == JOBS_QUEUE


def test_an_adapter_that_breaks_dead_letters_the_job_once(client, auth, runtime) -> None:
    job_id = client.post("/v1/jobs", json=CHAT, headers=auth).json()["id"]

    class Broken:
        def run(self, model, input):  # type: ignore[no-untyped-def]
            raise KeyError("choices")

    runtime.adapter = lambda route: Broken()  # type: ignore[method-assign]
    execution.run_job(runtime, job_id)
    execution.run_job(runtime, job_id)

    job = client.get(f"/v1/jobs/{job_id}", headers=auth).json()
    assert job["status"] == "dead_lettered"
    assert job["error"] == {"type": "internal_error", "message": "KeyError: 'choices'"}
    assert [a.error_class for a in attempts_of(runtime, job_id)] == ["internal_error"]


def test_a_job_whose_workers_keep_dying_is_dead_lettered_after_the_documented_count(
    client, auth, runtime, sim_calls
) -> None:
    job_id = client.post("/v1/jobs", json=CHAT, headers=auth).json()["id"]
    losses = runtime.settings.job_max_lost_workers
    for _ in range(losses):  # each worker claims it and dies mid-call; its lease lapses
        assert claim(runtime, job_id, lease_s=-1) is not None

    execution.run_job(runtime, job_id)

    job = client.get(f"/v1/jobs/{job_id}", headers=auth).json()
    assert job["status"] == "dead_lettered"
    assert job["error"]["type"] == "worker_lost"
    assert f"lost {losses} times in a row" in job["error"]["message"]
    assert sim_calls() == 0
    assert [a.status for a in attempts_of(runtime, job_id)] == ["lost"] * losses + ["failed"]


def test_lost_workers_use_no_route_attempts_and_their_cost_is_estimated(
    client, auth, runtime, sim_calls
) -> None:
    job_id = client.post("/v1/jobs", json=CHAT, headers=auth).json()["id"]
    with runtime.sessions() as session:
        reserved = session.get_one(Job, job_id).reserved_micros
    for _ in range(2):
        assert claim(runtime, job_id, lease_s=-1) is not None

    execution.run_job(runtime, job_id)

    attempts = attempts_of(runtime, job_id)
    assert [a.status for a in attempts] == ["lost", "lost", "succeeded"]
    # The first loss is closed by the second claim, which knew no estimate; the run's
    # takeover estimates the second from the request, as the job's maximum cost.
    assert [a.cost_estimated for a in attempts] == [True, True, False]
    assert attempts[1].cost_micros == reserved
    with runtime.sessions() as session:
        job = session.get_one(Job, job_id)
        assert (job.route_attempts, job.lost_workers) == (1, 0)
        assert job.cost_micros == sum(a.cost_micros for a in attempts)
    assert sim_calls() == 1
    total = client.get("/v1/usage", headers=auth).json()["total"]
    assert total["attempts"] == 3
    assert total["estimated_cost_usd"] == sum(a.cost_micros for a in attempts[:2]) / 1_000_000


def test_a_lapsed_lease_is_taken_over_and_the_job_finishes(client, auth, runtime) -> None:
    job_id = client.post("/v1/jobs", json=CHAT, headers=auth).json()["id"]
    claim(runtime, job_id, lease_s=-1)  # a worker claimed it, then died

    execution.run_job(runtime, job_id)

    job = client.get(f"/v1/jobs/{job_id}", headers=auth).json()
    assert (job["status"], job["attempts"]) == ("succeeded", 2)


def started_since(before: set[threading.Thread]) -> list[str]:
    return [thread.name for thread in threading.enumerate() if thread not in before]


def test_a_runtime_renews_slots_only_between_start_and_close(settings, engine, routes) -> None:
    override(routes, "openai", max_in_flight=1)
    broker = make_broker(settings, consumer=True)
    before = set(threading.enumerate())
    runtime = build_runtime(settings, broker, engine=engine, routes=routes)
    try:
        assert started_since(before) == []
        route = routes.by_name["openai"]
        answer = runtime.limits.check(route, "gpt-4o-mini", "acme", (1, 1), booked=False)
        assert answer.hold is not None and answer.hold.slot
        lease = answer.hold.lease_id
        key = f"{RATE_LIMIT_PREFIX}:openai:inflight"
        granted = runtime.redis_client.zscore(key, lease)

        runtime.start()

        assert started_since(before) == ["slot-renewer"]
        eventually(lambda: runtime.redis_client.zscore(key, lease), lambda e: e > granted)
    finally:
        runtime.close()
        broker.close()
    assert started_since(before) == []


def test_a_runtime_names_each_fallback_it_will_skip_for_want_of_a_key(
    settings, engine, routes, caplog
) -> None:
    spec = routes.by_name["openai"].models["gpt-4o-mini"]
    models = {**routes.by_name["openai"].models}
    models["gpt-4o-mini"] = spec.model_copy(
        update={"fallbacks": ("anthropic/claude-haiku-4-5", "openai/gpt-4o")}
    )
    override(routes, "openai", models=models)
    override(routes, "anthropic", api_key_env="GENQ_TEST_UNSET_KEY")
    broker = make_broker(settings, consumer=True)
    with caplog.at_level(logging.WARNING, logger="workers.runtime"):
        runtime = build_runtime(settings, broker, engine=engine, routes=routes)
    runtime.close()
    broker.close()

    assert [record.getMessage() for record in caplog.records] == [
        "fallback anthropic/claude-haiku-4-5 of openai/gpt-4o-mini is skipped: "
        "GENQ_TEST_UNSET_KEY is unset"
    ]
