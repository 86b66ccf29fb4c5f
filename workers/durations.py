"""How long a model's async jobs take: the running median of its recent finished jobs,
shared in Redis, which the polling policy aims at."""

import statistics
import time

import redis

from schema.names import BROKER_NAMESPACE

PREFIX = f"{BROKER_NAMESPACE}:durations"
KEEP = 101
CACHE_S = 30.0
MIN_SAMPLES = 5


class Durations:
    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self._cache: dict[str, tuple[float, float | None]] = {}

    def record(self, model_ref: str, seconds: float) -> None:
        key = f"{PREFIX}:{model_ref}"
        pipe = self.client.pipeline(transaction=False)
        pipe.lpush(key, f"{seconds:.3f}")
        pipe.ltrim(key, 0, KEEP - 1)
        try:
            pipe.execute()
        except redis.RedisError:
            return

    def median(self, model_ref: str) -> float | None:
        """The median of the last ``KEEP`` durations, once there are ``MIN_SAMPLES``."""
        cached = self._cache.get(model_ref)
        if cached and time.monotonic() - cached[0] < CACHE_S:
            return cached[1]
        try:
            samples = [float(v) for v in self.client.lrange(f"{PREFIX}:{model_ref}", 0, -1)]
        except redis.RedisError:
            return cached[1] if cached else None
        value = statistics.median(samples) if len(samples) >= MIN_SAMPLES else None
        self._cache[model_ref] = (time.monotonic(), value)
        return value
