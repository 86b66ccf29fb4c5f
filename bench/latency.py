"""Bench: how long one job takes from enqueue to its end, against a bare Dramatiq send.

Jobs are sent one at a time, each after the last one ended. genq: a POST /v1/jobs to the
API (`genq api` in its own process), run by `genq worker` (one process) beside the
scheduler; the job's row is read every millisecond until its status is terminal. The
baseline: a plain Dramatiq actor making the same chat call, its return value stored by
Dramatiq's Results middleware (Redis backend), sent with ``actor.send`` and its result
read every millisecond, on the same number of worker processes and threads. Both against
the same simulator (its own process, 2 ms per answer by default), in the same run; the
first jobs of each are a warm-up and not counted. Every chat is distinct (no result cache).
``api_cpu_ms_per_post`` is the API process's CPU time (from /proc) over the counted POSTs,
divided by their number.

    python bench/latency.py [--jobs 200] [--latency-ms 2] [--threads 8]
        [--database-url URL] [--redis-url URL]

Defaults: the database of GENQ_DATABASE_URL or --database-url if given, else a fresh SQLite
file; a private Redis unless --redis-url. The last line printed is JSON.
"""

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from dramatiq import Message
from dramatiq.results import ResultMissing
from sqlalchemy import Connection, Engine, select
from sqlalchemy.orm import Session

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cpu import tree_cpu_s
from stack import (
    DramatiqWorkers,
    Simulator,
    bench_stack,
    main_on_services,
    stop_all,
    wait_ready,
)

from genq.processes import Process, free_port, wait_until
from schema.jobs import TERMINAL_STATUSES, JobStatus
from schema.tables import Job
from store.tenants import create_tenant

WARMUP = 10
POLL_INTERVAL_S = 0.001
JOB_TIMEOUT_S = 10.0
WORKER_PROCESSES = 1


def timed(send: Callable[[], Callable[[], bool]]) -> float:
    """Milliseconds from calling ``send`` until the check it returns holds."""
    started = time.perf_counter()
    ended = send()
    while not ended():
        if time.perf_counter() - started > JOB_TIMEOUT_S:
            raise TimeoutError(f"a job did not end within {JOB_TIMEOUT_S:.0f}s")
        time.sleep(POLL_INTERVAL_S)
    return (time.perf_counter() - started) * 1000


def percentiles(samples: list[float]) -> dict[str, float]:
    """The median and 95th percentile, in milliseconds, of the samples after the warm-up."""
    counted = samples[WARMUP:]
    return {
        "p50_ms": round(statistics.median(counted), 2),
        "p95_ms": round(statistics.quantiles(counted, n=20)[18], 2),
    }


def result_stored(message: Message) -> Callable[[], bool]:
    """A check of whether the message's result is in the result backend."""

    def ended() -> bool:
        try:
            message.get_result(block=False)
        except ResultMissing:
            return False
        return True

    return ended


def run_dramatiq(
    env: dict[str, str], sim: Simulator, args: argparse.Namespace, var: Path
) -> list[float]:
    """Send-to-result times of the plain actor, one message at a time."""
    import plain_actors

    workers = DramatiqWorkers("plain", "bench.results", WORKER_PROCESSES, args.threads, env, var)
    try:
        wait_ready(workers, WORKER_PROCESSES, [sim])
        send = plain_actors.call_for_result.send
        return [
            timed(lambda n=number: result_stored(send(f"latency-{n}")))
            for number in range(WARMUP + args.jobs)
        ]
    finally:
        workers.stop()


def run_genq(
    engine: Engine, env: dict[str, str], sim: Simulator, args: argparse.Namespace, var: Path
) -> tuple[list[float], float]:
    """POST-to-terminal times of genq jobs, one at a time, and the API's CPU milliseconds
    per counted POST."""
    with Session(engine) as session, session.begin():
        tenant = create_tenant(session, f"bench-{time.time_ns()}")
    api_url = f"http://127.0.0.1:{free_port()}"
    env = {**env, "GENQ_WORKER_THREADS": str(args.threads)}
    worker_args = ["worker", "--processes", str(WORKER_PROCESSES), "--threads", str(args.threads)]
    processes: list[Process] = []
    try:
        api_process = Process("api", ["api", "--port", api_url.rsplit(":", 1)[1]], env, var)
        processes.append(api_process)
        processes.append(Process("scheduler", ["scheduler"], env, var))
        processes.append(Process("genq-worker", worker_args, env, var))
        wait_ready(processes[-1], WORKER_PROCESSES, [sim, *processes])
        with httpx.Client(
            base_url=api_url, headers={"Authorization": f"Bearer {tenant.api_key}"}
        ) as api:
            wait_until(lambda: up(api), 30, "the API", processes)
            with engine.connect() as connection:

                def one(number: int) -> float:
                    return timed(lambda: job_ended(connection, post_job(api, number)))

                times = [one(number) for number in range(WARMUP)]
                cpu_s = tree_cpu_s(api_process.popen.pid)
                times += [one(number) for number in range(WARMUP, WARMUP + args.jobs)]
                cpu_s = tree_cpu_s(api_process.popen.pid) - cpu_s
                statuses = set(
                    connection.scalars(select(Job.status).where(Job.tenant_id == tenant.tenant_id))
                )
    finally:
        stop_all(processes)
    if statuses != {JobStatus.SUCCEEDED}:
        raise SystemExit(f"genq: jobs ended {statuses}")
    return times, cpu_s * 1000 / args.jobs


def post_job(api: httpx.Client, number: int) -> str:
    """POST one distinct chat job; its id."""
    chat = {"messages": [{"role": "user", "content": f"latency {number}"}], "max_tokens": 16}
    body = {"model": "openai/gpt-4o-mini", "input": chat, "cache": False}
    return str(api.post("/v1/jobs", json=body).raise_for_status().json()["id"])


def job_ended(connection: Connection, job_id: str) -> Callable[[], bool]:
    """A check of whether the job's row shows a terminal status."""
    status = select(Job.status).where(Job.id == job_id)

    def ended() -> bool:
        found = connection.scalar(status)
        connection.rollback()  # so the next read sees later commits (SQLite)
        return found in TERMINAL_STATUSES

    return ended


def up(api: httpx.Client) -> bool:
    """Whether the API answers its liveness probe."""
    try:
        return api.get("/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def run(args: argparse.Namespace, database_url: str, redis_url: str, var: Path) -> dict[str, Any]:
    """Start the simulator; run the baseline, then genq; the JSON result."""
    with bench_stack(database_url, redis_url, args.latency_ms, var) as (engine, sim, env):
        baseline = percentiles(run_dramatiq(env, sim, args, var))
        print(f"plain Dramatiq send to result: {baseline}", flush=True)
        times, api_cpu_ms = run_genq(engine, env, sim, args, var)
        genq = percentiles(times)
        print(f"genq POST to terminal: {genq}", flush=True)
    return {
        "bench": "latency",
        "jobs": args.jobs,
        "latency_ms": args.latency_ms,
        "threads": args.threads,
        "store": engine.url.get_backend_name(),
        **genq,
        "added_p50_ms": round(genq["p50_ms"] - baseline["p50_ms"], 2),
        "added_p95_ms": round(genq["p95_ms"] - baseline["p95_ms"], 2),
        "api_cpu_ms_per_post": round(api_cpu_ms, 2),
        "dramatiq": baseline,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--latency-ms", type=float, default=2.0)
    parser.add_argument("--threads", type=int, default=8)
    main_on_services(parser, run)


if __name__ == "__main__":
    main()
