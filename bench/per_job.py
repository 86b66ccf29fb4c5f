"""Bench: what one chat job costs the worker, counted: database transactions, statements,
connection pings, Redis round trips and CPU.

N distinct OpenAI chat jobs (no result cache) are stored through the Producer for a new
tenant that has a webhook endpoint, so each job's event is recorded; then this process
runs each one through the real ``workers.execution.run_job``, one after another, on a
started runtime of its own (its own engine and Redis client, its call loop, a Dramatiq
StubBroker that keeps the messages run_job sends), each to its end, against the simulator
in its own process. A few jobs run first, uncounted, to warm the pool and SQLAlchemy's
statement cache.

Counted on the runtime's engine, its statements run straight on the driver, and its Redis
client only: transactions (on PostgreSQL the BEGINs psycopg sends, one before the first
statement of a transaction; a statement committed alone opens none. On SQLite the
engine's ``begin`` events), statements (``before_cursor_execute``, and the listeners of
``infra.direct.Direct``), pings (the dialect's ``do_ping``, what ``pool_pre_ping``
runs on every checkout), Redis round trips (packets
the runtime's Redis connections send: one per command, one per pipeline) and the CPU time
of this process (the thread that claims, the call loop and its finishers; the simulator
runs apart).

These are counts per job, not speeds: they need no baseline run beside them, so the JSON
line printed last has no ratios.

    python bench/per_job.py [--jobs 200] [--warmup 10] [--latency-ms 0]
        [--database-url URL] [--redis-url URL]

The store is --database-url (or GENQ_DATABASE_URL; it is migrated), else a fresh SQLite
file; Redis is --redis-url, else a private one.
"""

import argparse
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dramatiq.brokers.stub import StubBroker
from psycopg.pq import TransactionStatus
from pydantic import SecretStr
from redis.connection import Connection
from sqlalchemy import Connection as SAConnection
from sqlalchemy import Engine, event, func, select

sys.path.insert(0, str(Path(__file__).resolve().parent))

from stack import SIM_KEY, Simulator, genq_env, main_on_services
from throughput import held_jobs

from infra.db import make_engine, make_sessions, migrate
from schema.jobs import JobStatus
from schema.routes import load_routes
from schema.settings import Settings
from schema.tables import Job
from schema.webhooks import EndpointCreate
from store import webhook_endpoints
from workers.actors import declare_actors
from workers.execution import run_job
from workers.runtime import Runtime, build_runtime


@dataclass
class Counts:
    """What the runtime asked of its database and Redis while counting is on."""

    on: bool = False
    transactions: int = 0
    statements: int = 0
    pings: int = 0
    redis_round_trips: int = 0

    def count(self, name: str) -> None:
        if self.on:
            setattr(self, name, getattr(self, name) + 1)


def watch_engine(runtime: Runtime, counts: Counts) -> None:
    """Count the runtime's transactions, statements and pre-pings."""
    engine = runtime.engine
    postgres = engine.dialect.name == "postgresql"
    if runtime.direct is not None:
        runtime.direct.listeners.append(lambda _sql: counts.count("statements"))

    def statement(connection: SAConnection, *_args: Any) -> None:
        counts.count("statements")
        dbapi: Any = connection.connection.dbapi_connection
        idle = postgres and dbapi.info.transaction_status == TransactionStatus.IDLE
        if idle and not dbapi.autocommit:
            counts.count("transactions")

    event.listen(engine, "before_cursor_execute", statement)
    if not postgres:
        event.listen(engine, "begin", lambda _connection: counts.count("transactions"))
    ping = engine.dialect.do_ping

    def counted_ping(dbapi_connection: Any) -> bool:
        counts.count("pings")
        return ping(dbapi_connection)

    engine.dialect.do_ping = counted_ping  # type: ignore[method-assign]


def watch_redis(runtime: Runtime, counts: Counts) -> None:
    """Count the packets the runtime's Redis connections send; connections made from now
    on are counting ones."""

    class CountingConnection(Connection):
        def send_packed_command(self, command: Any, check_health: bool = True) -> None:
            counts.count("redis_round_trips")
            super().send_packed_command(command, check_health)

    pool = runtime.redis_client.connection_pool
    pool.disconnect()
    pool.connection_class = CountingConnection


def prepare(database_url: str, redis_url: str, var: Path, sim_url: str) -> Settings:
    """Settings for the runtime: this store and Redis, routes to the simulator."""
    env = genq_env(database_url, redis_url, sim_url, var)
    os.environ["OPENAI_API_KEY"] = SIM_KEY
    return Settings(
        var_dir=var / "genq-var",
        database_url=SecretStr(database_url),
        redis_url=SecretStr(redis_url),
        routes_file=Path(env["GENQ_ROUTES_FILE"]),
        tenant_rate_per_minute=int(env["GENQ_TENANT_RATE_PER_MINUTE"]),
        webhook_allow_networks=["127.0.0.0/8"],
        _env_file=None,
    )


def stored_jobs(settings: Settings, engine: Engine, jobs: int, hook_url: str) -> list[str]:
    """``jobs`` chat jobs of a new tenant with one webhook endpoint; their ids."""
    tenant_id, messages = held_jobs(settings, engine, jobs)
    with make_sessions(engine).begin() as session:
        webhook_endpoints.create(session, settings, tenant_id, EndpointCreate(url=hook_url))
    return [message.kwargs["job_id"] for message in messages]


def run_to_end(runtime: Runtime, job_id: str) -> None:
    """Run the job, then wait for the call it handed to the loop to be finished."""
    run_job(runtime, job_id)
    while runtime.calls is not None and runtime.calls.taken:
        time.sleep(0.0005)


def run(args: argparse.Namespace, database_url: str, redis_url: str, var: Path) -> dict[str, Any]:
    """Store the jobs, run the warm-up uncounted and the rest counted; the JSON result."""
    sim = Simulator(args.latency_ms, var)
    try:
        settings = prepare(database_url, redis_url, var, sim.url)
        engine = make_engine(database_url)
        migrate(engine)
        job_ids = stored_jobs(settings, engine, args.warmup + args.jobs, f"{sim.url}/hooks/bench")
        routes = load_routes(settings.routes_file)
        runtime = build_runtime(
            settings, StubBroker(), engine=make_engine(database_url), routes=routes
        )
        declare_actors(runtime)
        runtime.start()
        counts = Counts()
        watch_engine(runtime, counts)
        watch_redis(runtime, counts)
        try:
            for job_id in job_ids[: args.warmup]:
                run_to_end(runtime, job_id)
            counts.on = True
            cpu_started = time.process_time()
            for job_id in job_ids[args.warmup :]:
                run_to_end(runtime, job_id)
            cpu_s = time.process_time() - cpu_started
            counts.on = False
        finally:
            runtime.close()
        with engine.connect() as connection:
            succeeded = connection.scalar(
                select(func.count()).where(Job.id.in_(job_ids), Job.status == JobStatus.SUCCEEDED)
            )
        engine.dispose()
    finally:
        sim.stop()
    if succeeded != len(job_ids):
        raise SystemExit(f"only {succeeded} of {len(job_ids)} jobs succeeded")
    per_job = args.jobs
    return {
        "bench": "per_job",
        "jobs": args.jobs,
        "store": engine.url.get_backend_name(),
        "transactions_per_job": round(counts.transactions / per_job, 2),
        "statements_per_job": round(counts.statements / per_job, 2),
        "pings_per_job": round(counts.pings / per_job, 2),
        "redis_round_trips_per_job": round(counts.redis_round_trips / per_job, 2),
        "cpu_ms_per_job": round(cpu_s * 1000 / per_job, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=10, help="Jobs run first, uncounted.")
    parser.add_argument("--latency-ms", type=float, default=0.0)
    main_on_services(parser, run)


if __name__ == "__main__":
    main()
