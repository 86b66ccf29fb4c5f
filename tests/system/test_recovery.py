"""Recovery in seconds, on real processes: a broker that lost its data, and a worker killed
while holding prefetched messages. Both finish long before the 15-minute queued sweep."""

import os
import signal
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis
from sqlalchemy import Engine, select

from genq.processes import Process, wait_until
from infra.broker_upkeep import mark_epoch
from producers import Producer
from schema.names import BROKER_NAMESPACE, JOBS_QUEUE
from schema.tables import Job, utcnow
from simulator import SimServer
from store.tenants import NewTenant
from tests.conftest import SIM_KEY, SimControl
from tests.system.test_scale import WORKER_READY, all_terminal, routes_file, submit

WIPE_JOBS = 100
STRANDED_JOBS = 20


def environment(engine: Engine, redis_url: str, sim: SimServer, tmp_path: Path) -> dict[str, str]:
    """genq's processes on the test's store, Redis and simulator (default recovery settings)."""
    return {
        **os.environ,
        "GENQ_DATABASE_URL": engine.url.render_as_string(hide_password=False),
        "GENQ_REDIS_URL": redis_url,
        "GENQ_BROKER": "redis",
        "GENQ_ROUTES_FILE": str(routes_file(tmp_path / "routes.toml", sim.url)),
        "GENQ_VAR_DIR": str(tmp_path / "var"),
        "GENQ_SCHEDULER_METRICS_PORT": "0",
        "GENQ_WORKER_METRICS_PORT": "0",
        "OPENAI_API_KEY": SIM_KEY,
    }


@contextmanager
def running(processes: list[Process]) -> Iterator[list[Process]]:
    try:
        yield processes
    finally:
        for process in reversed(processes):
            process.stop()


def ready(worker: Process, processes: list[Process]) -> None:
    wait_until(
        lambda: WORKER_READY in worker.log_path.read_text(errors="replace"),
        30,
        f"{worker.name} to be ready",
        processes,
    )


def statuses(engine: Engine) -> Counter[str]:
    with engine.connect() as connection:
        return Counter(connection.execute(select(Job.status)).scalars().all())


def longest_stall_s(engine: Engine, since: float) -> float:
    """How long after ``since`` (epoch seconds) the last job finished."""
    with engine.connect() as connection:
        last = max(connection.execute(select(Job.finished_at)).scalars().all())
    return last.timestamp() - since


@pytest.mark.parametrize("engine", ["postgresql"], indirect=True)
def test_every_job_finishes_after_the_broker_is_flushed_mid_run(
    engine: Engine,
    redis_url: str,
    producer: Producer,
    tenant: NewTenant,
    sim: SimServer,
    sim_control: SimControl,
    tmp_path: Path,
) -> None:
    sim_control.config(latency_ms=100)
    env = environment(engine, redis_url, sim, tmp_path)
    worker = Process("worker", ["worker", "--processes", "1", "--threads", "4"], env, tmp_path)
    with running([worker, Process("scheduler", ["scheduler"], env, tmp_path)]) as processes:
        ready(worker, processes)
        job_ids = submit(producer, tenant.tenant_id, WIPE_JOBS)
        wait_until(lambda: statuses(engine)["succeeded"] >= 10, 60, "some jobs to finish")

        redis.Redis.from_url(redis_url).flushdb()
        flushed_at = utcnow().timestamp()
        left = WIPE_JOBS - statuses(engine)["succeeded"]
        wait_until(lambda: all_terminal(engine), 120, "every job to finish", processes)

    assert statuses(engine) == {"succeeded": WIPE_JOBS}
    assert len(job_ids) == WIPE_JOBS
    print(
        f"broker wipe: {left} jobs open at the flush; the last finished "
        f"{longest_stall_s(engine, flushed_at):.1f}s after it"
    )


def all_prefetched(client: redis.Redis) -> bool:
    """Whether the doomed worker took every message off the queue: all are in its ack set
    but the first, which is acknowledged once its call is on the loop (or not yet)."""
    queued = client.llen(f"{BROKER_NAMESPACE}:{JOBS_QUEUE}")
    return queued == 0 and held_by_workers(client) >= STRANDED_JOBS - 1


def held_by_workers(client: redis.Redis) -> int:
    """Messages fetched from the jobs queue into some worker's ack set."""
    pattern = f"{BROKER_NAMESPACE}:__acks__.*.{JOBS_QUEUE}"
    return sum(int(client.scard(key)) for key in client.scan_iter(pattern))


@pytest.mark.parametrize("engine", ["postgresql"], indirect=True)
def test_messages_prefetched_by_a_killed_worker_run_within_a_minute(
    engine: Engine,
    redis_url: str,
    producer: Producer,
    tenant: NewTenant,
    sim: SimServer,
    sim_control: SimControl,
    tmp_path: Path,
) -> None:
    # Every call hangs: the doomed worker's one place on its call loop is stuck on its
    # first job, so its thread waits for it while the rest of its prefetch sits in memory,
    # never claimed.
    sim_control.faults({"endpoint": "chat.completions", "kind": "timeout", "delay_s": 60})
    env = environment(engine, redis_url, sim, tmp_path)
    doomed_env = {
        **env,
        "GENQ_WORKER_PREFETCH": str(STRANDED_JOBS + 5),
        "GENQ_WORKER_IN_FLIGHT": "1",
    }
    doomed = Process(
        "doomed", ["worker", "--processes", "1", "--threads", "1"], doomed_env, tmp_path
    )
    client = redis.Redis.from_url(redis_url)
    with running([doomed]) as processes:
        ready(doomed, processes)
        submit(producer, tenant.tenant_id, STRANDED_JOBS)
        wait_until(lambda: all_prefetched(client), 30, "the prefetch", processes)
        os.killpg(doomed.popen.pid, signal.SIGKILL)
        doomed.popen.wait()
    killed_at = time.monotonic()
    stranded = ids_in(engine, "queued")
    assert len(stranded) >= STRANDED_JOBS - 1  # all but the one its thread was stuck on
    sim_control.faults()
    mark_epoch(producer.broker)  # so only the requeue of dead workers' messages can help

    healthy = Process("worker", ["worker", "--processes", "1", "--threads", "4"], env, tmp_path)
    with running([healthy, Process("scheduler", ["scheduler"], env, tmp_path)]) as processes:
        wait_until(
            lambda: stranded <= ids_in(engine, "succeeded"),
            60,
            "the stranded jobs to finish",
            processes,
        )
        took_s = time.monotonic() - killed_at
    print(f"stranded prefetch: {len(stranded)} jobs finished within {took_s:.1f}s of the kill")


def ids_in(engine: Engine, status: str) -> set[str]:
    with engine.connect() as connection:
        return set(connection.execute(select(Job.id).where(Job.status == status)).scalars())
