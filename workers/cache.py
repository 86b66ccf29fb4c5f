"""Exact-match result cache in Redis.

The key is a digest of the canonical request: route, model and the whole input (every
parameter that can change the output). Entries are scoped to the tenant unless the
route says its results may be shared, and live for the route's ``cache_ttl_s``.
"""

import hashlib
import json
import logging
from typing import Any

import redis

from schema.names import BROKER_NAMESPACE

PREFIX = f"{BROKER_NAMESPACE}:cache"
logger = logging.getLogger(__name__)


def cache_key(route: str, model: str, input: dict[str, Any], scope: str) -> str:
    canonical = json.dumps(
        {"route": route, "model": model, "input": input}, sort_keys=True, separators=(",", ":")
    )
    return f"{PREFIX}:{scope}:{hashlib.sha256(canonical.encode()).hexdigest()}"


class ResultCache:
    def __init__(self, client: redis.Redis) -> None:
        self.client = client

    def get(self, key: str, route: str) -> dict[str, Any] | None:
        """The cached result, counting a hit or a miss for the route; a miss if Redis fails."""
        try:
            raw = self.client.get(key)
            self.client.hincrby(f"{PREFIX}:stats", f"{route}:{'hits' if raw else 'misses'}", 1)
        except redis.RedisError:
            logger.warning("result cache unavailable", exc_info=True)
            return None
        return json.loads(raw) if raw else None

    def put(self, key: str, value: dict[str, Any], ttl_s: int) -> None:
        try:
            self.client.set(key, json.dumps(value, separators=(",", ":")), ex=ttl_s)
        except redis.RedisError:
            logger.warning("result cache unavailable", exc_info=True)

    def stats(self) -> dict[str, int]:
        """Hits and misses per route, as ``{"<route>:hits": n, "<route>:misses": n}``."""
        return {k.decode(): int(v) for k, v in self.client.hgetall(f"{PREFIX}:stats").items()}
