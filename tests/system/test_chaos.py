"""Chaos: two worker hosts run a few hundred jobs while one of them is SIGKILLed every two
seconds for twenty seconds and started again. Every job still succeeds, none is
dead-lettered for its workers' deaths, every provider call is on the books, and each job
sends exactly one terminal event."""

import os
import signal
import time
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from genq.processes import Process, wait_until
from producers import Producer
from schema.tables import DeadLetter, Job, JobAttempt, WebhookEvent
from simulator import SimServer
from store.tenants import NewTenant
from tests.conftest import SIM_KEY, SimControl
from tests.system.test_scale import WORKER_READY, all_terminal, routes_file, submit

JOBS = 300
KILL_EVERY_S = 2.0
KILLING_FOR_S = 20.0
SIM_LATENCY_MS = 600
LEASE_MARGIN_S = "2"
ROUTE_TIMEOUT_S = 5.0


WORKER_ARGS = ["worker", "--processes", "1", "--threads", "4"]
# Four calls in flight per host, as many as its threads: the jobs must outlast the chaos,
# and a call loop with room for a thousand would run them all before the third kill.
IN_FLIGHT = "4"


def start_worker(name: str, env: dict[str, str], log_dir: Path) -> Process:
    worker = Process(name, WORKER_ARGS, env, log_dir)
    wait_until(
        lambda: WORKER_READY in worker.log_path.read_text(errors="replace"),
        60,
        f"{name} to be ready",
        [worker],
    )
    return worker


def finished(engine: Engine) -> int:
    with engine.connect() as connection:
        return connection.scalar(
            select(func.count()).select_from(Job).where(Job.status == "succeeded")
        )


def sigkill(process: Process) -> None:
    os.killpg(process.popen.pid, signal.SIGKILL)
    process.popen.wait()
    process.stop()


@pytest.mark.parametrize("engine", ["postgresql"], indirect=True)
def test_jobs_survive_a_worker_killed_every_two_seconds(
    engine: Engine,
    redis_url: str,
    producer: Producer,
    client,
    auth,
    tenant: NewTenant,
    sim: SimServer,
    sim_control: SimControl,
    hooks,
    tmp_path: Path,
) -> None:
    sim_control.config(latency_ms=SIM_LATENCY_MS)
    endpoint = client.post(
        "/v1/webhook-endpoints", json={"url": hooks.url(hooks.new())}, headers=auth
    )
    assert endpoint.status_code == 201
    routes = routes_file(tmp_path / "routes.toml", sim.url)
    routes.write_text(
        routes.read_text().replace("timeout_s = 60.0", f"timeout_s = {ROUTE_TIMEOUT_S}")
    )
    env = {
        **os.environ,
        "GENQ_DATABASE_URL": engine.url.render_as_string(hide_password=False),
        "GENQ_REDIS_URL": redis_url,
        "GENQ_BROKER": "redis",
        "GENQ_ROUTES_FILE": str(routes),
        "GENQ_VAR_DIR": str(tmp_path / "var"),
        "GENQ_JOB_LEASE_MARGIN_S": LEASE_MARGIN_S,
        "GENQ_WORKER_IN_FLIGHT": IN_FLIGHT,
        "GENQ_WORKER_METRICS_PORT": "0",
        "GENQ_SCHEDULER_METRICS_PORT": "0",
        "GENQ_WEBHOOK_ALLOW_NETWORKS": "127.0.0.0/8",
        "OPENAI_API_KEY": SIM_KEY,
    }
    steady = start_worker("steady", env, tmp_path)
    doomed = start_worker("doomed-0", env, tmp_path)
    scheduler = Process("scheduler", ["scheduler"], env, tmp_path)
    kills = 0
    try:
        job_ids = submit(producer, tenant.tenant_id, JOBS)
        started = time.monotonic()
        while time.monotonic() - started < KILLING_FOR_S:
            time.sleep(KILL_EVERY_S)  # the chaos's own pace, not a wait for work
            sigkill(doomed)
            kills += 1
            doomed = Process(f"doomed-{kills}", WORKER_ARGS, env, tmp_path)
        open_after_chaos = JOBS - finished(engine)
        wait_until(lambda: all_terminal(engine), 240, "every job to end", [steady, scheduler])
    finally:
        for process in (doomed, steady, scheduler):
            process.stop()

    with engine.connect() as connection:
        jobs = connection.execute(select(Job.id, Job.status, Job.created_at, Job.finished_at)).all()
        attempts = Counter(connection.execute(select(JobAttempt.status)).scalars())
        letters = connection.scalar(select(func.count()).select_from(DeadLetter))
        events = Counter(
            connection.execute(
                select(WebhookEvent.job_id).where(WebhookEvent.type == "job.succeeded")
            ).scalars()
        )
    stall_s = max((finished - created).total_seconds() for _, _, created, finished in jobs)
    print(
        f"chaos: {kills} kills, {open_after_chaos} jobs still open when they stopped, "
        f"attempts {dict(attempts)}, longest job {stall_s:.1f}s"
    )

    assert kills >= 9
    assert open_after_chaos > 0, "the jobs must outlast the chaos to be tested by it"
    assert Counter(status for _, status, _, _ in jobs) == {"succeeded": JOBS}
    assert sorted(job_id for job_id, *_ in jobs) == sorted(job_ids)
    assert letters == 0
    calls = sim_control.calls("chat.completions")
    # Every call has its attempt row; a row without a call is one of a worker killed
    # between its claim and its request, closed as lost.
    assert attempts["succeeded"] <= calls <= sum(attempts.values())
    assert sum(attempts.values()) - calls <= attempts["lost"]
    assert set(attempts) <= {"succeeded", "lost"}
    assert events == dict.fromkeys(job_ids, 1)
