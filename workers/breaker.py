"""A circuit breaker per route, shared by every worker through Redis.

It opens after ``breaker_failures`` consecutive failures, or when the failure rate over
the last ``breaker_window`` calls reaches ``breaker_failure_rate``; stays open for
``breaker_cooldown_s``; then lets exactly one probe through at a time (half-open): a
probe that succeeds closes it, one that fails opens it again. Only the provider's own
trouble counts (5xx, 529, timeouts, connection errors, malformed answers); a refused
request or a 429 says the provider is up. ``pybreaker`` keeps state per process (or
in Redis without an exclusive half-open probe) and has no failure-rate window, hence
these few lines of Lua, run inside the scripts a job's admission and its bookkeeping
already cost (``workers/limits.py``): the breaker adds no round trip of its own.

Every success is recorded, even on a quiet circuit: skipping or batching them would let
failures that interleave with successes (a thousand calls in flight) count as
consecutive and open the circuit falsely, or delay the failures that should open it.
"""

from infra.circuits import state_key
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

# Lua functions for the limits' scripts; each needs ``now`` (ms) in scope.
CIRCUIT = """
local function circuit(state_key, probe_key, probe_ttl)
  local state = redis.call('HGET', state_key, 'state') or 'closed'
  if state == 'closed' then return 0, false end
  local until_ms = tonumber(redis.call('HGET', state_key, 'open_until') or '0')
  if state == 'open' and now < until_ms then return until_ms - now, false end
  if redis.call('SET', probe_key, '1', 'NX', 'PX', probe_ttl) then
    redis.call('HSET', state_key, 'state', 'half_open')
    return 0, true
  end
  return 1000, false
end

local function record(state_key, probe_key, window_key, failed, probe, limits)
  local window, failures, rate, cooldown = unpack(limits)
  local state = redis.call('HGET', state_key, 'state') or 'closed'
  if probe then redis.call('DEL', probe_key) end
  if state == 'half_open' and probe then
    if failed then
      redis.call('HSET', state_key, 'state', 'open', 'open_until', now + cooldown)
    else
      redis.call('DEL', state_key, window_key)
    end
    return
  end
  redis.call('LPUSH', window_key, failed and '1' or '0')
  redis.call('LTRIM', window_key, 0, window - 1)
  local consecutive = 0
  if failed then consecutive = redis.call('HINCRBY', state_key, 'consecutive', 1)
  else redis.call('HSET', state_key, 'consecutive', 0) end
  if state ~= 'closed' or not failed then return end
  local outcomes = redis.call('LRANGE', window_key, 0, -1)
  local failed_count = 0
  for _, outcome in ipairs(outcomes) do
    if outcome == '1' then failed_count = failed_count + 1 end
  end
  local rate_tripped = #outcomes >= window and failed_count / #outcomes >= rate
  if consecutive >= failures or rate_tripped then
    redis.call('HSET', state_key, 'state', 'open', 'open_until', now + cooldown)
  end
end
"""


def circuit_keys(route: str) -> list[str]:
    """The circuit's state hash, its half-open probe and its window of recent outcomes."""
    key = state_key(route)
    return [key, f"{key}:probe", f"{key}:window"]


def probe_ttl_ms(route: Route) -> int:
    """How long a probe stays taken if its worker never reports: one call's longest time."""
    return int((route.timeout_s + route.connect_timeout_s) * 1000) + 1000


def thresholds(route: Route) -> list[float]:
    """What ``record`` opens the circuit on: window, consecutive failures, failure rate
    and how long it then stays open (ms)."""
    return [
        route.breaker_window,
        route.breaker_failures,
        route.breaker_failure_rate,
        int(route.breaker_cooldown_s * 1000),
    ]
