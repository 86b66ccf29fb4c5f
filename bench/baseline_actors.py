"""The baseline for bench/quota.py: the retry-on-429 pattern of the usual guides.

A plain Dramatiq actor calls the provider; on a 429 it sleeps for the Retry-After the
provider sent and tries again. There is no shared limiter, so every worker finds out
about the limit by being told off.
"""

import os
import time

import dramatiq
import httpx
import redis
from dramatiq.brokers.redis import RedisBroker

COMPLETED_KEY = "bench:baseline:completed"

broker = RedisBroker(url=os.environ["BENCH_REDIS_URL"], namespace="bench")
dramatiq.set_broker(broker)
client = httpx.Client(timeout=60)
counter = redis.Redis.from_url(os.environ["BENCH_REDIS_URL"])


@dramatiq.actor(queue_name="bench.baseline", max_retries=0)
def call_provider(tenant: str, body: dict) -> None:
    url = f"{os.environ['BENCH_SIM_URL']}/v1/chat/completions"
    while True:
        response = client.post(
            url,
            json={**body, "model": "gpt-4o-mini"},
            headers={"Authorization": "Bearer sk-genq-bench"},
        )
        if response.status_code != 429:
            break
        time.sleep(float(response.headers.get("retry-after", "1")))
    response.raise_for_status()
    counter.hincrby(COMPLETED_KEY, tenant, 1)
