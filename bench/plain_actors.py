"""The baselines of bench/throughput.py and bench/latency.py: plain Dramatiq actors making
the same chat call to the simulator as a genq job.

``call`` stores nothing; ``call_and_insert`` also INSERTs the answer into a table (the
durable baseline); ``call_for_result`` returns the answer to Dramatiq's Results
middleware (Redis backend), where the sender waits for it. Configured by environment:
BENCH_REDIS_URL, BENCH_SIM_URL and, for ``call_and_insert``, BENCH_DATABASE_URL and
BENCH_THREADS.
"""

import logging
import os
import threading
import time
from functools import cache
from typing import Any

import dramatiq
import httpx
from dramatiq.brokers.redis import RedisBroker
from dramatiq.results import Results
from dramatiq.results.backends import RedisBackend
from sqlalchemy import Column, Engine, Float, MetaData, String, Table, Text, create_engine

NAMESPACE = "genq-bench"
KEY = "sk-genq-bench"
POOL = 256  # HTTP connections kept per process, opened as needed: more than any bench's threads
metadata = MetaData()
results_table = Table(
    "bench_plain_results",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("body", Text, nullable=False),
    Column("stored_at", Float, nullable=False),
)

# Quiet like genq's workers: no log line per HTTP request.
logging.getLogger("httpx").setLevel(logging.WARNING)
broker = RedisBroker(url=os.environ["BENCH_REDIS_URL"], namespace=NAMESPACE)
broker.add_middleware(Results(backend=RedisBackend(client=broker.client, namespace=NAMESPACE)))
dramatiq.set_broker(broker)
client = httpx.Client(
    timeout=30, limits=httpx.Limits(max_connections=POOL, max_keepalive_connections=POOL)
)


def chat(key: str) -> str:
    """POST the chat completion a genq job makes, about ``key``; the answer's body."""
    response = client.post(
        f"{os.environ['BENCH_SIM_URL']}/v1/chat/completions",
        json={
            "model": "gpt-4o-mini",
            "messages": [{"role": "user", "content": f"bench job {key}"}],
            "max_tokens": 16,
        },
        headers={"Authorization": f"Bearer {KEY}"},
    )
    response.raise_for_status()
    return response.text


_engine_made = threading.Lock()


@cache
def _engine() -> Engine:
    threads = int(os.environ["BENCH_THREADS"])
    return create_engine(os.environ["BENCH_DATABASE_URL"], pool_size=threads, max_overflow=0)


def engine() -> Engine:
    """The durable baseline's database: one engine per process, made under a lock (threads
    racing into a bare ``cache`` would each make one), keeping a connection per thread."""
    with _engine_made:
        return _engine()


@dramatiq.actor(queue_name="bench.plain", max_retries=0)
def call(key: str) -> None:
    chat(key)


@dramatiq.actor(queue_name="bench.durable", max_retries=0)
def call_and_insert(key: str) -> None:
    body = chat(key)
    with engine().begin() as connection:
        connection.execute(results_table.insert().values(key=key, body=body, stored_at=time.time()))


@dramatiq.actor(queue_name="bench.results", max_retries=0, store_results=True)
def call_for_result(key: str) -> dict[str, Any]:
    return {"body": chat(key)}
