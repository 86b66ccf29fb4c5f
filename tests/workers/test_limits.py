"""Rate limits, circuit breakers and deadlines: waiting for capacity is scheduling, not
failure; a 429 pauses the route; a 5xx storm opens the circuit and it recovers; one
tenant's burst does not starve another's few jobs."""

import os
import signal
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import dramatiq
import pytest
from sqlalchemy import select, update

from infra.circuits import circuit_states
from schema.jobs import TERMINAL_STATUSES as TERMINAL
from schema.names import JOBS_QUEUE
from schema.tables import Job, utcnow
from tests.conftest import SIM_KEY, new_tenant
from tests.helpers import override
from tests.producers.test_api import CHAT
from tests.waiting import eventually
from tests.workers.test_worker import attempts_of, job_of
from workers import execution
from workers.sweeps import resend_stalled

pytestmark = pytest.mark.parametrize("engine", ["postgresql"], indirect=True)


def submit(client, headers, count: int, body=CHAT) -> list[str]:  # type: ignore[no-untyped-def]
    answer = client.post("/v1/jobs/batch", json={"jobs": [body] * count}, headers=headers)
    assert answer.status_code == 202, answer.text
    return [job["id"] for job in answer.json()["data"]]


def status(runtime, job_id: str) -> tuple[str, int]:  # type: ignore[no-untyped-def]
    with runtime.sessions() as session:
        job = session.get_one(Job, job_id)
        return job.status, job.attempts


def delayed_messages(runtime) -> int:  # type: ignore[no-untyped-def]
    return runtime.broker.client.hlen(f"genq:{JOBS_QUEUE}.DQ.msgs")


def test_waiting_for_capacity_burns_no_retry_and_meets_no_429(
    client, auth, routes, worker, runtime, sim_control
) -> None:
    sim_control.config(rpm_limit=60)
    override(routes, "openai", rpm=60)

    ids = submit(client, auth, 63)
    jobs = [job_of(client, auth, job_id, TERMINAL) for job_id in ids]

    assert {job["status"] for job in jobs} == {"succeeded"}
    assert {job["attempts"] for job in jobs} == {1}
    stats = sim_control.http.get("/_sim/stats").json()
    assert stats["rate_limited"].get("chat.completions", 0) == 0
    assert stats["calls"]["chat.completions"] == 63


def test_a_429_pauses_the_whole_route_without_burning_retries(
    client, auth, runtime, sim_control
) -> None:
    sim_control.faults(
        {"endpoint": "chat.completions", "kind": "status", "code": 429, "retry_after": 30}
    )
    first, second = submit(client, auth, 2)

    execution.run_job(runtime, first)
    execution.run_job(runtime, second)

    assert status(runtime, first) == ("queued", 1)
    assert [a.error_class for a in attempts_of(runtime, first)] == ["rate_limited"]
    assert status(runtime, second) == ("queued", 0)
    assert sim_control.calls("chat.completions") == 1
    assert runtime.broker.client.pttl("genq:rl:openai:pause") > 20_000
    assert delayed_messages(runtime) == 2


def test_a_5xx_storm_opens_the_circuit_and_a_probe_closes_it(
    client, auth, routes, runtime, sim_control
) -> None:
    override(routes, "openai", max_attempts=1, breaker_failures=3, breaker_cooldown_s=1)
    sim_control.faults({"endpoint": "chat.completions", "kind": "status", "code": 500})
    failing = submit(client, auth, 3)
    for job_id in failing:
        execution.run_job(runtime, job_id)
    assert circuit_states(runtime.broker.client, ["openai"]) == {"openai": "open"}
    assert client.get("/readyz").json()["circuits"] == {"openai": "open"}

    (waiting,) = submit(client, auth, 1)
    execution.run_job(runtime, waiting)
    assert status(runtime, waiting) == ("queued", 0)
    assert sim_control.calls("chat.completions") == 3

    sim_control.faults()
    worker = dramatiq.Worker(runtime.broker, worker_timeout=50, worker_threads=2)
    worker.start()
    try:
        job = job_of(client, auth, waiting, TERMINAL)
    finally:
        worker.stop()
    assert (job["status"], job["attempts"]) == ("succeeded", 1)
    assert circuit_states(runtime.broker.client, ["openai"]) == {"openai": "closed"}
    assert [status(runtime, j)[0] for j in failing] == ["dead_lettered"] * 3


def test_an_open_circuit_sends_jobs_to_the_fallback(
    client, auth, routes, runtime, sim_control
) -> None:
    models = {**routes.by_name["openai"].models}
    models["gpt-4o-mini"] = models["gpt-4o-mini"].model_copy(
        update={"fallbacks": ("anthropic/claude-haiku-4-5",)}
    )
    override(routes, "openai", models=models, max_attempts=1, breaker_failures=1)
    sim_control.faults({"endpoint": "chat.completions", "kind": "status", "code": 503, "count": 1})
    first, second = submit(client, auth, 2)
    execution.run_job(runtime, first)  # fails over to anthropic itself, and opens the circuit

    execution.run_job(runtime, second)

    with runtime.sessions() as session:
        moved = session.get_one(Job, second)
    assert (moved.status, moved.current_model, moved.attempts) == (
        "queued",
        "anthropic/claude-haiku-4-5",
        0,
    )
    execution.run_job(runtime, second)
    assert status(runtime, second) == ("succeeded", 1)
    assert sim_control.calls("chat.completions") == 1


def test_one_tenants_burst_does_not_starve_anothers_few_jobs(
    client, auth, engine, routes, runtime, sim_control, worker
) -> None:
    sim_control.config(latency_ms=150)
    override(routes, "openai", max_in_flight=2)
    other = {"Authorization": f"Bearer {new_tenant(engine, 'globex').api_key}"}

    burst = submit(client, auth, 24)
    few = submit(client, other, 3)
    done = {job_id: job_of(client, other if job_id in few else auth, job_id, TERMINAL)
            for job_id in few + burst}  # fmt: skip

    assert {job["status"] for job in done.values()} == {"succeeded"}
    last_of_few = max(done[j]["finished_at"] for j in few)
    burst_done_before = sum(done[j]["finished_at"] < last_of_few for j in burst)
    assert burst_done_before <= 16


def test_a_job_past_its_deadline_fails_without_a_call(client, auth, runtime, sim_control) -> None:
    (job_id,) = submit(client, auth, 1, {**CHAT, "deadline_s": 60})
    with runtime.sessions.begin() as session:
        session.execute(
            update(Job).where(Job.id == job_id).values(deadline_at=utcnow() - timedelta(seconds=1))
        )

    execution.run_job(runtime, job_id)

    job = client.get(f"/v1/jobs/{job_id}", headers=auth).json()
    assert (job["status"], job["error"]["type"]) == ("failed", "deadline_exceeded")
    assert sim_control.calls("chat.completions") == 0


def test_tenant_enqueue_rate_is_429_with_retry_after(client, auth, engine, tenant) -> None:
    from schema.tables import Tenant

    with engine.begin() as connection:
        connection.execute(
            update(Tenant).where(Tenant.id == tenant.tenant_id).values(rate_per_minute=3)
        )
    assert client.post("/v1/jobs/batch", json={"jobs": [CHAT] * 2}, headers=auth).status_code == 202
    assert client.post("/v1/jobs", json=CHAT, headers=auth).status_code == 202

    refused = client.post("/v1/jobs", json=CHAT, headers=auth)

    assert refused.status_code == 429
    assert 0 < int(refused.headers["Retry-After"]) <= 60
    assert refused.json()["error"]["type"] == "rate_limited"
    with engine.connect() as connection:
        assert len(connection.execute(select(Job.id)).all()) == 3


def test_a_sigkilled_worker_frees_its_slot_and_the_job_finishes(
    client, auth, engine, routes, runtime, sim_control, settings, tmp_path: Path
) -> None:
    sim_control.faults({"endpoint": "chat.completions", "kind": "timeout", "delay_s": 60})
    routes_file = tmp_path / "routes.toml"
    routes_file.write_text(
        "[routes.openai]\n"
        'protocol = "openai-chat"\n'
        f'base_url = "{routes.by_name["openai"].base_url}"\n'
        'api_key_env = "GENQ_TEST_SIM_KEY"\n'
        'models = ["gpt-4o-mini"]\n'
        "timeout_s = 3\nmax_in_flight = 1\n"
    )
    override(routes, "openai", max_in_flight=1)
    env = {
        **os.environ,
        "GENQ_DATABASE_URL": engine.url.render_as_string(hide_password=False),
        "GENQ_REDIS_URL": settings.redis_url.get_secret_value(),
        "GENQ_ROUTES_FILE": str(routes_file),
        "GENQ_JOB_LEASE_MARGIN_S": "1",
        "GENQ_TEST_SIM_KEY": SIM_KEY,
    }
    doomed = subprocess.Popen(
        [sys.executable, "-m", "genq", "worker", "--processes", "1", "--threads", "2"],
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        (job_id,) = submit(client, auth, 1)
        eventually(
            lambda: (runtime.limits.in_flight("openai"), status(runtime, job_id)),
            lambda seen: seen == (1, ("running", 1)),
            timeout_s=30,
        )
    finally:
        os.killpg(doomed.pid, signal.SIGKILL)
        doomed.wait()
    sim_control.faults()

    eventually(lambda: runtime.limits.in_flight("openai"), lambda n: n == 0, timeout_s=20)
    eventually(
        lambda: resend_stalled(runtime.sessions, runtime.broker, grace_s=0),
        lambda resent: resent == 1,
        timeout_s=20,
    )
    execution.run_job(runtime, job_id)

    job = client.get(f"/v1/jobs/{job_id}", headers=auth).json()
    assert (job["status"], job["attempts"]) == ("succeeded", 2)
