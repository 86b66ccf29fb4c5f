"""Provider rate limits shared by every worker on every machine, in Redis.

Why not a library: ``limits`` and Dramatiq's rate limiters answer "allowed or not" for
one key and a cost of 1. genq needs token-weighted costs (TPM), several limits checked
and booked together (route and model, requests and tokens, the tenant's share), the
exact time a request may go, refunds once the real usage is known, and corrections
from the provider's own headers. That is a few lines of Lua over GCRA state, run inside
the one script a job's admission costs (``workers/limits.py``).

The model: each limit is a GCRA bucket of ``limit`` tokens refilled at ``limit``/60 per
second, the way OpenAI and Anthropic describe theirs. Its state is a TAT (theoretical
arrival time). A request of cost ``c`` fits at ``max(TAT, now) + c/rate - burst/rate``;
taking it moves TAT on by ``c/rate``.

Fairness, in two steps. First a request books its place on its tenant's share of the
route: every tenant active on the route in the last ``ACTIVE_WINDOW_MS`` gets an equal
share (a per-tenant bucket at ``rate / active_tenants``), booked up to ``horizon``
ahead, and the worker waits for that slot (in the thread if short, else by re-enqueueing
the message with the exact delay), so a job is deferred about once. A burst of one
tenant's thousands of jobs thus books only that tenant's timeline, and another tenant's
few jobs find their own timeline empty. Then, when its slot comes, the request takes the
route's and the model's own capacity, now or after a short wait. Equal shares (max-min
fairness) need no configuration and match how providers bill: per account.
"""

from dataclasses import dataclass

from schema.names import RATE_LIMIT_PREFIX as PREFIX
from schema.names import route_limit_key
from schema.routes import Route

ACTIVE_WINDOW_MS = 30_000
LEASE_TTL_MS = 10_000
REMAINING_HEADERS = {
    "rpm": ("x-ratelimit-remaining-requests", "anthropic-ratelimit-requests-remaining"),
    "tpm": ("x-ratelimit-remaining-tokens", "anthropic-ratelimit-tokens-remaining"),
}

CLOCK = """
local now_parts = redis.call('TIME')
local now = now_parts[1] * 1000 + math.floor(now_parts[2] / 1000)
"""

# Lua functions the limits' scripts share; each needs ``now`` from ``CLOCK``.
GCRA = """
local function touch_tenant(key, tenant, window)
  redis.call('ZADD', key, now, tenant)
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
  redis.call('PEXPIRE', key, window * 2)
  return math.max(1, redis.call('ZCARD', key))
end

local function gcra(pause_key, first_key, first_arg, count, horizon, share)
  local start = math.max(now, tonumber(redis.call('GET', pause_key) or '0'))
  local tats, steps = {}, {}
  for i = 1, count do
    local base = first_arg + (i - 1) * 3
    local rate = tonumber(ARGV[base]) / share
    local burst = tonumber(ARGV[base + 1]) / share
    local cost = math.min(tonumber(ARGV[base + 2]), burst)
    local tat = math.max(tonumber(redis.call('GET', KEYS[first_key + i - 1]) or '0'), now)
    tats[i] = tat + cost / rate
    steps[i] = burst / rate
    start = math.max(start, tats[i] - steps[i])
  end
  if start - now > horizon then return false, math.ceil(start - now - horizon) end
  for i = 1, count do
    local ttl = math.ceil(tats[i] - now + steps[i]) + 60000
    redis.call('SET', KEYS[first_key + i - 1], tostring(tats[i]), 'PX', ttl)
  end
  return true, math.ceil(start - now)
end

local function adjust(key, mode, value, rate, burst)
  local tat = tonumber(redis.call('GET', key) or tostring(now))
  if mode == 'refund' then
    tat = math.max(now - burst / rate, tat - value / rate)
  elseif mode == 'remaining' then
    tat = math.max(tat, now + (burst - value) / rate)
  end
  local ttl = math.ceil(math.max(tat - now, 0) + burst / rate) + 60000
  redis.call('SET', key, tostring(tat), 'PX', ttl)
end
"""

SLOTS = """
local function take_slot(route_key, tenant_key, limit, active, lease, ttl)
  local tenant_limit = math.max(1, math.ceil(limit / active))
  redis.call('ZREMRANGEBYSCORE', route_key, '-inf', now)
  redis.call('ZREMRANGEBYSCORE', tenant_key, '-inf', now)
  if redis.call('ZCARD', tenant_key) >= tenant_limit then return 'over_share' end
  if redis.call('ZCARD', route_key) >= limit then return 'route_full' end
  for _, key in ipairs({route_key, tenant_key}) do
    redis.call('ZADD', key, now + ttl, lease)
    redis.call('PEXPIRE', key, ttl * 2)
  end
  return nil
end

local function release_slot(route_key, tenant_key, lease)
  redis.call('ZREM', route_key, lease)
  redis.call('ZREM', tenant_key, lease)
end
"""

HOLD = """
local function hold(key, ms)
  local until_ms = now + ms
  if until_ms > tonumber(redis.call('GET', key) or '0') then
    redis.call('SET', key, tostring(until_ms), 'PX', ms + 1000)
  end
  return until_ms - now
end
"""

PAUSE = CLOCK + HOLD + "return hold(KEYS[1], tonumber(ARGV[1]))\n"


@dataclass(frozen=True)
class Bucket:
    key: str
    limit_per_minute: int
    cost: float
    tenant_share: bool = False

    @property
    def rate_per_ms(self) -> float:
        return self.limit_per_minute / 60_000

    @property
    def burst(self) -> float:
        return float(self.limit_per_minute)


@dataclass(frozen=True)
class Adjustment:
    """A correction to one bucket after a call: ``refund`` unused cost, or set what the
    provider says ``remaining``."""

    key: str
    mode: str
    value: float
    rate_per_ms: float
    burst: float


def buckets(route: Route, model: str, tenant_id: str, tokens: float) -> list[Bucket]:
    """The limits a request to ``route``/``model`` costing ``tokens`` is counted against."""
    spec = route.models[model]
    base = f"{PREFIX}:{route.name}"
    found: list[Bucket] = []
    for scope, rpm, tpm in (
        (base, route.rpm, route.tpm),
        (f"{base}:model:{model}", spec.rpm, spec.tpm),
    ):
        if rpm:
            found.append(Bucket(f"{scope}:rpm", rpm, 1))
        if tpm:
            found.append(Bucket(f"{scope}:tpm", tpm, tokens))
    if route.rpm:
        found.append(Bucket(f"{base}:tenant:{tenant_id}:rpm", route.rpm, 1, tenant_share=True))
    if route.tpm:
        found.append(Bucket(f"{base}:tenant:{tenant_id}:tpm", route.tpm, tokens, tenant_share=True))
    return found


def token_refunds(
    route: Route, model: str, tenant_id: str, *, taken: float, booked: float, used: float
) -> list[Adjustment]:
    """Square the token buckets with what the request really used: give back what the
    route's take held beyond it, and correct the tenant's booking (up or down)."""
    found = []
    for bucket in buckets(route, model, tenant_id, taken):
        if not bucket.key.endswith(":tpm"):
            continue
        difference = (booked if bucket.tenant_share else taken) - used
        if difference > 0 or (bucket.tenant_share and difference < 0):
            found.append(
                Adjustment(bucket.key, "refund", difference, bucket.rate_per_ms, bucket.burst)
            )
    return found


def observed(route: Route, headers: dict[str, str]) -> list[Adjustment]:
    """Corrections of the route's own buckets from the provider's remaining-capacity
    headers; a route without that limit has nothing to correct."""
    found = []
    for kind, limit in (("rpm", route.rpm), ("tpm", route.tpm)):
        value = next((headers[n] for n in REMAINING_HEADERS[kind] if n in headers), None)
        if limit and value is not None and value.isdigit():
            key = route_limit_key(route.name, kind)
            found.append(Adjustment(key, "remaining", int(value), limit / 60_000, float(limit)))
    return found


def slot_keys(route: str, tenant_id: str) -> list[str]:
    """The route's and the tenant's sorted sets of in-flight leases, scored by expiry."""
    return [route_limit_key(route, "inflight"), f"{PREFIX}:{route}:tenant:{tenant_id}:inflight"]
