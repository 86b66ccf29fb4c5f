"""Bench: what durability costs at enqueue.

genq commits each job with its outbox row, then sends the Dramatiq message (one job per
call, and 100 per batch call); the baseline
sends the same message with a plain Dramatiq ``actor.send`` and stores nothing. Both run
in this process against the same Redis, in the same run. The last line printed is JSON.

    python bench/enqueue.py [--jobs N] [--database-url URL] [--redis-url URL]

Defaults: 2,000 jobs, a fresh SQLite file and a private Redis in a temporary directory.
"""

import argparse
import json
import tempfile
import time
from pathlib import Path

import dramatiq
from pydantic import SecretStr
from sqlalchemy.orm import Session

from infra.brokers import make_broker
from infra.db import make_engine, migrate
from infra.redis_conn import ensure_embedded_redis, stop_embedded_redis
from producers import Producer
from schema.jobs import BatchItem, JobCreate
from schema.names import JOBS_QUEUE, RUN_JOB
from schema.settings import Settings
from store.tenants import create_tenant

REQUEST = JobCreate(
    model="openai/gpt-4o-mini",
    input={"messages": [{"role": "user", "content": "Say hello."}], "max_tokens": 16},
)


def bench_genq(producer: Producer, tenant_id: str, jobs: int) -> float:
    started = time.perf_counter()
    for _ in range(jobs):
        producer.submit(tenant_id, REQUEST)
    return jobs / (time.perf_counter() - started)


def bench_genq_batches(producer: Producer, tenant_id: str, jobs: int, size: int = 100) -> float:
    items = [BatchItem(**REQUEST.model_dump()) for _ in range(size)]
    started = time.perf_counter()
    for _ in range(max(1, jobs // size)):
        producer.submit_batch(tenant_id, items)
    return max(1, jobs // size) * size / (time.perf_counter() - started)


def bench_plain_dramatiq(settings: Settings, jobs: int) -> float:
    broker = make_broker(settings, consumer=False)
    actor = dramatiq.Actor(
        lambda job_id: None,
        broker=broker,
        actor_name=RUN_JOB,
        queue_name=JOBS_QUEUE,
        priority=0,
        options={},
    )
    started = time.perf_counter()
    for i in range(jobs):
        actor.send(job_id=f"job_{i}")
    rate = jobs / (time.perf_counter() - started)
    broker.close()
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--database-url")
    parser.add_argument("--redis-url")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        var = Path(tmp)
        redis_url = args.redis_url or ensure_embedded_redis(var)
        database_url = args.database_url or f"sqlite:///{var / 'bench.db'}"
        engine = make_engine(database_url)
        migrate(engine)
        with Session(engine) as session, session.begin():
            tenant = create_tenant(session, f"bench-{time.time_ns()}")
        settings = Settings(
            var_dir=var,
            database_url=SecretStr(database_url),
            redis_url=SecretStr(redis_url),
            _env_file=None,
        )
        producer = Producer(settings, engine=engine)
        bench_genq(producer, tenant.tenant_id, min(100, args.jobs))  # warm-up
        genq_rate = bench_genq(producer, tenant.tenant_id, args.jobs)
        batch_rate = bench_genq_batches(producer, tenant.tenant_id, args.jobs)
        baseline_rate = bench_plain_dramatiq(settings, args.jobs)
        producer.close()
        if not args.redis_url:
            stop_embedded_redis(var)

    print(
        json.dumps(
            {
                "bench": "enqueue",
                "jobs": args.jobs,
                "store": engine.url.get_backend_name(),
                "genq_jobs_per_s": round(genq_rate, 1),
                "genq_batch100_jobs_per_s": round(batch_rate, 1),
                "baseline_jobs_per_s": round(baseline_rate, 1),
                "ratio_vs_plain_dramatiq": round(genq_rate / baseline_rate, 3),
                "batch_ratio_vs_plain_dramatiq": round(batch_rate / baseline_rate, 3),
            }
        )
    )


if __name__ == "__main__":
    main()
