"""Bench: how many provider calls one worker process keeps in flight when each takes long.

N distinct OpenAI chat jobs are stored beforehand with their messages held back; one
`genq worker` process (T threads, the call loop's default places) and the scheduler start
on an empty queue, the messages are sent at once, and the simulator answers each call
after L seconds. Every 250 ms the bench reads the calls the simulator is answering (its own
count: what the provider sees in flight), the jobs ended in the store, and the resident
memory of the worker's process tree.

The steady window runs from the first ended job to the last job claimed (none queued any
more): the pipe is full, so by Little's law jobs/s should be in-flight / latency; the
figure `ratio_vs_littles_law` compares the two. Targets: at least 1,000 in flight, jobs/s
at least 0.9 x in-flight / latency, RSS under 400 MB. The baseline, a plain Dramatiq actor
making the same call on the same threads, holds one call per thread: `threads` is printed
beside `peak_in_flight` for that comparison rather than run for minutes.

    python bench/concurrency.py [--jobs 3000] [--threads 8] [--latency-ms 20000]
        [--database-url URL] [--redis-url URL] [--timeout-s 240]

The last line printed is JSON.
"""

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, select

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cpu import tree_rss_mb
from stack import bench_stack, main_on_services, stop_all, wait_ready
from throughput import genq_settings, held_jobs, send_all

from genq.processes import Process
from infra.brokers import make_broker
from schema.jobs import TERMINAL_STATUSES, JobStatus
from schema.tables import Job

SAMPLE_EVERY_S = 0.25


def run(args: argparse.Namespace, database_url: str, redis_url: str, var: Path) -> dict[str, Any]:
    with bench_stack(database_url, redis_url, args.latency_ms, var) as (engine, sim, env):
        settings = genq_settings(env)
        tenant_id, messages = held_jobs(settings, engine, args.jobs)
        broker = make_broker(settings, consumer=False)
        by_status = (
            select(Job.status, func.count()).where(Job.tenant_id == tenant_id).group_by(Job.status)
        )
        sim.reset()
        worker_env = {**env, "GENQ_WORKER_THREADS": str(args.threads)}
        worker_args = ["worker", "--processes", "1", "--threads", str(args.threads)]
        processes = [Process("scheduler", ["scheduler"], worker_env, var)]
        samples: list[tuple[float, int, int, int, float]] = []
        try:
            processes.append(Process("genq-worker", worker_args, worker_env, var))
            wait_ready(processes[-1], 1, [sim, *processes])
            started = time.perf_counter()
            send_all(broker, messages)
            while True:
                with engine.connect() as connection:
                    statuses = dict(connection.execute(by_status).all())
                ended = sum(statuses.get(status, 0) for status in TERMINAL_STATUSES)
                queued = statuses.get(JobStatus.QUEUED, 0)
                in_flight = httpx.get(f"{sim.url}/_sim/stats").json()["in_flight"]
                rss = tree_rss_mb(processes[-1].popen.pid)
                samples.append((time.perf_counter() - started, in_flight, ended, queued, rss))
                if ended == args.jobs:
                    break
                for process in (sim, *processes):
                    if not process.alive():
                        raise RuntimeError(f"{process.name} exited:\n{process.log_tail()}")
                if time.perf_counter() - started > args.timeout_s:
                    raise TimeoutError(f"{ended} of {args.jobs} jobs ended in {args.timeout_s}s")
                time.sleep(SAMPLE_EVERY_S)
        finally:
            stop_all(processes)
            broker.close()
        with engine.connect() as connection:
            statuses = dict(connection.execute(by_status).all())
    if statuses != {JobStatus.SUCCEEDED: args.jobs}:
        raise SystemExit(f"jobs ended {statuses}")
    return figures(args, samples)


def figures(
    args: argparse.Namespace, samples: list[tuple[float, int, int, int, float]]
) -> dict[str, Any]:
    """The JSON result: the peak, and the steady window's mean in flight and jobs/s."""
    first_ended = next(i for i, sample in enumerate(samples) if sample[2] > 0)
    last_queued = max(i for i, sample in enumerate(samples) if sample[3] > 0 or i == first_ended)
    window = samples[first_ended : last_queued + 1]
    seconds = window[-1][0] - window[0][0]
    mean_in_flight = statistics.fmean(sample[1] for sample in window)
    jobs_per_s = (window[-1][2] - window[0][2]) / seconds if seconds else 0.0
    latency_s = args.latency_ms / 1000
    return {
        "bench": "concurrency",
        "jobs": args.jobs,
        "threads": args.threads,
        "latency_ms": args.latency_ms,
        "window_s": round(seconds, 1),
        "peak_in_flight": max(sample[1] for sample in samples),
        "mean_in_flight": round(mean_in_flight, 1),
        "jobs_per_s": round(jobs_per_s, 1),
        "ratio_vs_littles_law": (
            round(jobs_per_s * latency_s / mean_in_flight, 3) if mean_in_flight else None
        ),
        "rss_mb": round(max(sample[4] for sample in samples), 1),
        "total_s": round(samples[-1][0], 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=3000)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--latency-ms", type=float, default=20_000.0)
    parser.add_argument("--timeout-s", type=float, default=240.0)
    main_on_services(parser, run)


if __name__ == "__main__":
    main()
