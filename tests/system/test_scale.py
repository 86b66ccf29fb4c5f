"""Scale-out: two worker hosts and a scheduler, as separate OS processes on one PostgreSQL
and one Redis, finish a batch with every job done exactly once; each host's /metrics
shows its share."""

import os
from collections import Counter
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine, select

from genq.processes import Process, free_port, wait_until
from producers import Producer
from schema.jobs import TERMINAL_STATUSES, BatchItem
from schema.routes import DEFAULT_ROUTES_FILE
from schema.tables import Job, JobAttempt
from simulator import SimServer
from store.tenants import NewTenant
from tests.conftest import SIM_KEY, SimControl

JOBS = 150
WORKERS = ("worker-a", "worker-b")
WORKER_READY = "Worker process is ready for action."
# Each call takes this long, so the batch outlasts one worker's prefetch and both pull.
SIM_LATENCY_MS = 50


def jobs_done_by(metrics_url: str) -> float:
    """What one worker host's Prometheus endpoint says its processes finished."""
    for line in httpx.get(metrics_url, timeout=5).text.splitlines():
        if line.startswith('genq_jobs_total{route="openai",status="succeeded"}'):
            return float(line.split()[-1])
    return 0.0


def routes_file(path: Path, sim_url: str) -> Path:
    """The shipped default routes, pointed at the test's simulator."""
    path.write_text(DEFAULT_ROUTES_FILE.read_text().replace("http://127.0.0.1:8900", sim_url))
    return path


def submit(producer: Producer, tenant_id: str, count: int) -> list[str]:
    """Distinct chat jobs (none can come from the result cache), in full batches."""
    items = [
        BatchItem(
            model="openai/gpt-4o-mini",
            input={"messages": [{"role": "user", "content": f"scale job {i}"}], "max_tokens": 16},
        )
        for i in range(count)
    ]
    size = producer.settings.batch_max_jobs
    return [
        job.id
        for start in range(0, count, size)
        for job in producer.submit_batch(tenant_id, items[start : start + size])
    ]


def all_terminal(engine: Engine) -> bool:
    """Whether every stored job has reached a final status."""
    with engine.connect() as connection:
        statuses = connection.execute(select(Job.status)).scalars().all()
    return all(status in TERMINAL_STATUSES for status in statuses)


@pytest.mark.parametrize("engine", ["postgresql"], indirect=True)
def test_two_worker_processes_finish_a_batch_each_job_exactly_once(
    engine: Engine,
    redis_url: str,
    producer: Producer,
    tenant: NewTenant,
    sim: SimServer,
    sim_control: SimControl,
    tmp_path: Path,
) -> None:
    sim_control.config(latency_ms=SIM_LATENCY_MS)
    env = {
        **os.environ,
        "GENQ_DATABASE_URL": engine.url.render_as_string(hide_password=False),
        "GENQ_REDIS_URL": redis_url,
        "GENQ_BROKER": "redis",  # where the producer fixture sends
        "GENQ_ROUTES_FILE": str(routes_file(tmp_path / "routes.toml", sim.url)),
        "GENQ_VAR_DIR": str(tmp_path / "var"),
        "GENQ_SCHEDULER_METRICS_PORT": "0",
        "OPENAI_API_KEY": SIM_KEY,
    }
    worker_args = ["worker", "--processes", "1", "--threads", "8"]
    ports = {name: free_port() for name in WORKERS}
    processes: list[Process] = []
    try:
        for name in WORKERS:
            worker_env = {**env, "GENQ_WORKER_METRICS_PORT": str(ports[name])}
            processes.append(Process(name, worker_args, worker_env, tmp_path))
        processes.append(Process("scheduler", ["scheduler"], env, tmp_path))
        for worker in processes[: len(WORKERS)]:
            wait_until(
                lambda w=worker: WORKER_READY in w.log_path.read_text(errors="replace"),
                30,
                f"{worker.name} to be ready",
                processes,
            )

        job_ids = submit(producer, tenant.tenant_id, JOBS)
        wait_until(lambda: all_terminal(engine), 30, "the batch to finish", processes)
        done_by = {
            name: jobs_done_by(f"http://127.0.0.1:{port}/metrics") for name, port in ports.items()
        }
    finally:
        for process in reversed(processes):
            process.stop()

    with engine.connect() as connection:
        jobs = dict(connection.execute(select(Job.id, Job.status)).all())
        attempts = connection.execute(select(JobAttempt.job_id, JobAttempt.status)).all()

    assert Counter(jobs.values()) == {"succeeded": JOBS}
    assert sorted(jobs) == sorted(job_ids)
    assert sorted(job_id for job_id, _ in attempts) == sorted(job_ids)
    assert {status for _, status in attempts} == {"succeeded"}
    assert sim_control.calls("chat.completions") == JOBS
    # Each worker host's own /metrics: both did work, and together all of it, once.
    assert sum(done_by.values()) == JOBS, done_by
    assert all(count > 0 for count in done_by.values()), done_by
