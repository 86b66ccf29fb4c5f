"""A circuit breaker per route, shared by every worker through Redis.

It opens after ``breaker_failures`` consecutive failures, or when the failure rate over
the last ``breaker_window`` calls reaches ``breaker_failure_rate``; stays open for
``breaker_cooldown_s``; then lets exactly one probe through at a time (half-open): a
probe that succeeds closes it, one that fails opens it again. Only the provider's own
trouble counts (5xx, 529, timeouts, connection errors, malformed answers); a refused
request or a 429 says the provider is up. ``pybreaker`` keeps state per process (or
in Redis without an exclusive half-open probe) and has no failure-rate window, hence
this small script.

An operator's pause (``infra/route_control.py``) is checked in the same script, so it
costs no extra round trip: a paused route holds its jobs, re-checking every
``PAUSED_RECHECK_MS``.
"""

from dataclasses import dataclass

import redis

from infra.circuits import state_key
from schema.names import route_hold_key
from schema.routes import Route
from workers.providers import ErrorClass

PAUSED_RECHECK_MS = 5000

PROVIDER_TROUBLE = frozenset(
    {
        ErrorClass.SERVER,
        ErrorClass.OVERLOADED,
        ErrorClass.TIMEOUT,
        ErrorClass.CONNECT,
        ErrorClass.INVALID_RESPONSE,
    }
)

ALLOW = """
if redis.call('EXISTS', KEYS[3]) == 1 then return {3, tonumber(ARGV[2])} end
local now_parts = redis.call('TIME')
local now = now_parts[1] * 1000 + math.floor(now_parts[2] / 1000)
local state = redis.call('HGET', KEYS[1], 'state') or 'closed'
if state == 'closed' then return {1, 0} end
local until_ms = tonumber(redis.call('HGET', KEYS[1], 'open_until') or '0')
if state == 'open' and now < until_ms then return {0, until_ms - now} end
if redis.call('SET', KEYS[2], '1', 'NX', 'PX', tonumber(ARGV[1])) then
  redis.call('HSET', KEYS[1], 'state', 'half_open')
  return {2, 0}
end
return {0, 1000}
"""

RECORD = """
local now_parts = redis.call('TIME')
local now = now_parts[1] * 1000 + math.floor(now_parts[2] / 1000)
local failed = ARGV[1] == '1'
local probe = ARGV[2] == '1'
local window = tonumber(ARGV[3])
local state = redis.call('HGET', KEYS[1], 'state') or 'closed'
if probe then redis.call('DEL', KEYS[2]) end
if state == 'half_open' and probe then
  if failed then
    redis.call('HSET', KEYS[1], 'state', 'open', 'open_until', now + tonumber(ARGV[6]))
  else
    redis.call('DEL', KEYS[1], KEYS[3])
  end
  return 1
end
redis.call('LPUSH', KEYS[3], failed and '1' or '0')
redis.call('LTRIM', KEYS[3], 0, window - 1)
local consecutive = 0
if failed then consecutive = redis.call('HINCRBY', KEYS[1], 'consecutive', 1)
else redis.call('HSET', KEYS[1], 'consecutive', 0) end
if state ~= 'closed' then return 1 end
local outcomes = redis.call('LRANGE', KEYS[3], 0, -1)
local failures = 0
for _, outcome in ipairs(outcomes) do if outcome == '1' then failures = failures + 1 end end
local rate_tripped = #outcomes >= window and failures / #outcomes >= tonumber(ARGV[5])
if failed and (consecutive >= tonumber(ARGV[4]) or rate_tripped) then
  redis.call('HSET', KEYS[1], 'state', 'open', 'open_until', now + tonumber(ARGV[6]))
end
return 1
"""


@dataclass(frozen=True)
class Permit:
    """May a call go to the route; as a half-open probe; else in how long to ask again,
    and whether because an operator paused the route."""

    allowed: bool
    probe: bool
    wait_ms: int
    paused: bool = False


class CircuitBreaker:
    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self._allow = client.register_script(ALLOW)
        self._record = client.register_script(RECORD)

    def allow(self, route: Route) -> Permit:
        probe_ttl_ms = int((route.timeout_s + route.connect_timeout_s) * 1000) + 1000
        keys = [*self._keys(route)[:2], route_hold_key(route.name)]
        verdict, wait_ms = self._allow(keys=keys, args=[probe_ttl_ms, PAUSED_RECHECK_MS])
        if verdict == 3:
            return Permit(False, False, int(wait_ms), paused=True)
        return Permit(verdict > 0, verdict == 2, int(wait_ms))

    def record(self, route: Route, error_class: str | None, probe: bool) -> None:
        """Count one call's outcome (``error_class`` None for a success)."""
        failed = error_class in PROVIDER_TROUBLE
        self._record(
            keys=self._keys(route),
            args=[
                int(failed),
                int(probe),
                route.breaker_window,
                route.breaker_failures,
                route.breaker_failure_rate,
                int(route.breaker_cooldown_s * 1000),
            ],
        )

    def release_probe(self, route_name: str) -> None:
        """Give back a half-open probe that will not call the provider after all."""
        self.client.delete(f"{state_key(route_name)}:probe")

    @staticmethod
    def _keys(route: Route) -> list[str]:
        key = state_key(route.name)
        return [key, f"{key}:probe", f"{key}:window"]
