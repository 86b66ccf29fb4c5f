"""Per-receiver limits shared by every worker, in Redis: a receiver (scheme, host, port) has
at most ``max_in_flight`` deliveries at once, and pauses after it says "slow down" (429,
502, 503, 504, Retry-After). A slow or struggling receiver so holds a few worker threads,
never all of them, and deliveries to every other receiver go on."""

import hashlib
import uuid

import redis

from schema.names import WEBHOOK_PREFIX
from workers.ratelimit import PAUSE

ACQUIRE = """
local now_parts = redis.call('TIME')
local now = now_parts[1] * 1000 + math.floor(now_parts[2] / 1000)
local paused = tonumber(redis.call('GET', KEYS[2]) or '0')
if paused > now then return paused - now end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local held = redis.call('ZSCORE', KEYS[1], ARGV[3])
if not held and redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then return -1 end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[1]), ARGV[3])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[1]) * 2)
return 0
"""


class ReceiverGate:
    def __init__(self, client: redis.Redis, max_in_flight: int) -> None:
        self.client = client
        self.max_in_flight = max_in_flight
        self._acquire = client.register_script(ACQUIRE)
        self._pause = client.register_script(PAUSE)

    def acquire(self, origin: str, lease_ms: int, lease: str | None = None) -> str | int:
        """A lease id to send to ``origin`` for ``lease_ms`` from now (``lease`` renewed,
        if given and not yet lapsed); else how many ms it stays paused, or -1 when it
        already has ``max_in_flight`` deliveries under way."""
        lease = lease or uuid.uuid4().hex
        got = int(
            self._acquire(keys=self._keys(origin), args=[lease_ms, self.max_in_flight, lease])
        )
        return lease if got == 0 else got

    def release(self, origin: str, lease: str) -> None:
        self.client.zrem(self._keys(origin)[0], lease)

    def pause(self, origin: str, seconds: float) -> None:
        """Hold every delivery to ``origin`` for ``seconds`` (never shortening a pause)."""
        self._pause(keys=[self._keys(origin)[1]], args=[max(1, int(seconds * 1000))])

    @staticmethod
    def _keys(origin: str) -> list[str]:
        digest = hashlib.sha256(origin.encode()).hexdigest()[:32]
        base = f"{WEBHOOK_PREFIX}:{digest}"
        return [f"{base}:inflight", f"{base}:pause"]
