"""Provider rate limits shared by every worker on every machine, in Redis.

Why not a library: ``limits`` and Dramatiq's rate limiters answer "allowed or not" for
one key and a cost of 1. genq needs token-weighted costs (TPM), several limits checked
and booked together (route and model, requests and tokens, the tenant's share), the
exact time a request may go, refunds once the real usage is known, and corrections
from the provider's own headers. That is one small Lua script over GCRA state.

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

import math
import threading
import uuid
from dataclasses import dataclass
from enum import Enum

import redis

from schema.names import RATE_LIMIT_PREFIX as PREFIX
from schema.names import active_tenants_key
from schema.routes import Route

ACTIVE_WINDOW_MS = 30_000
LEASE_TTL_MS = 10_000

BOOK = """
local now_parts = redis.call('TIME')
local now = now_parts[1] * 1000 + math.floor(now_parts[2] / 1000)
local horizon = tonumber(ARGV[1])
local tenant = ARGV[2]
local count = tonumber(ARGV[3])
redis.call('ZADD', KEYS[2], now, tenant)
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - tonumber(ARGV[4]))
redis.call('PEXPIRE', KEYS[2], tonumber(ARGV[4]) * 2)
local active = math.max(1, redis.call('ZCARD', KEYS[2]))
local start = math.max(now, tonumber(redis.call('GET', KEYS[1]) or '0'))
local tats = {}
local steps = {}
for i = 1, count do
  local base = 4 + (i - 1) * 4
  local rate = tonumber(ARGV[base + 1])
  local burst = tonumber(ARGV[base + 2])
  if ARGV[base + 4] == '1' then
    rate = rate / active
    burst = burst / active
  end
  local cost = math.min(tonumber(ARGV[base + 3]), burst)
  local tat = math.max(tonumber(redis.call('GET', KEYS[2 + i]) or '0'), now)
  local step = cost / rate
  tats[i] = tat + step
  steps[i] = burst / rate
  start = math.max(start, tat + step - burst / rate)
end
if start - now > horizon then
  return {0, math.ceil(start - now - horizon)}
end
for i = 1, count do
  local ttl = math.ceil(tats[i] - now + steps[i]) + 60000
  redis.call('SET', KEYS[2 + i], tostring(tats[i]), 'PX', ttl)
end
return {1, math.ceil(start - now)}
"""

ADJUST = """
local now_parts = redis.call('TIME')
local now = now_parts[1] * 1000 + math.floor(now_parts[2] / 1000)
local key = KEYS[1]
local mode = ARGV[1]
local value = tonumber(ARGV[2])
local rate = tonumber(ARGV[3])
local burst = tonumber(ARGV[4])
local tat = tonumber(redis.call('GET', key) or tostring(now))
if mode == 'refund' then
  tat = math.max(now - burst / rate, tat - value / rate)
elseif mode == 'remaining' then
  tat = math.max(tat, now + (burst - value) / rate)
end
local ttl = math.ceil(math.max(tat - now, 0) + burst / rate) + 60000
redis.call('SET', key, tostring(tat), 'PX', ttl)
return 1
"""

PAUSE = """
local now_parts = redis.call('TIME')
local now = now_parts[1] * 1000 + math.floor(now_parts[2] / 1000)
local until_ms = now + tonumber(ARGV[1])
if until_ms > tonumber(redis.call('GET', KEYS[1]) or '0') then
  redis.call('SET', KEYS[1], tostring(until_ms), 'PX', tonumber(ARGV[1]) + 1000)
end
return until_ms - now
"""

ACQUIRE_SLOT = """
local now_parts = redis.call('TIME')
local now = now_parts[1] * 1000 + math.floor(now_parts[2] / 1000)
local ttl = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local active = math.max(1, redis.call('ZCARD', KEYS[3]))
local tenant_limit = math.max(1, math.ceil(limit / active))
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
if redis.call('ZCARD', KEYS[2]) >= tenant_limit then return -1 end
if redis.call('ZCARD', KEYS[1]) >= limit then return 0 end
redis.call('ZADD', KEYS[1], now + ttl, ARGV[3])
redis.call('ZADD', KEYS[2], now + ttl, ARGV[3])
redis.call('PEXPIRE', KEYS[1], ttl * 2)
redis.call('PEXPIRE', KEYS[2], ttl * 2)
return 1
"""


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
class Booking:
    """The verdict on a request: booked to go in ``wait_ms``, or try again in ``wait_ms``."""

    booked: bool
    wait_ms: int


class SlotRefusal(Enum):
    ROUTE_FULL = "route_full"
    OVER_SHARE = "over_share"


@dataclass(frozen=True)
class Slot:
    route: str
    tenant_id: str
    lease_id: str


class RateLimiter:
    """Books provider capacity and in-flight slots for one worker process."""

    def __init__(self, client: redis.Redis, horizon_ms: int = 20_000) -> None:
        self.client = client
        self.horizon_ms = horizon_ms
        self._book = client.register_script(BOOK)
        self._adjust = client.register_script(ADJUST)
        self._pause = client.register_script(PAUSE)
        self._acquire_slot = client.register_script(ACQUIRE_SLOT)
        self._held: set[Slot] = set()
        self._lock = threading.Lock()

    def buckets(self, route: Route, model: str, tenant_id: str, tokens: float) -> list[Bucket]:
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
            found.append(
                Bucket(f"{base}:tenant:{tenant_id}:tpm", route.tpm, tokens, tenant_share=True)
            )
        return found

    def book(self, route: Route, model: str, tenant_id: str, tokens: float) -> Booking:
        """Book the request's place on its tenant's share of the route, up to the horizon."""
        buckets = self.buckets(route, model, tenant_id, tokens)
        return self._run(route, tenant_id, [b for b in buckets if b.tenant_share], self.horizon_ms)

    def take(self, route: Route, model: str, tenant_id: str, tokens: float) -> Booking:
        """Take the route's and the model's own capacity now, or say how long until it fits."""
        buckets = self.buckets(route, model, tenant_id, tokens)
        return self._run(route, tenant_id, [b for b in buckets if not b.tenant_share], 0)

    def _run(self, route: Route, tenant_id: str, buckets: list[Bucket], horizon_ms: int) -> Booking:
        args: list[float | str] = [horizon_ms, tenant_id, len(buckets), ACTIVE_WINDOW_MS]
        for bucket in buckets:
            args += [bucket.rate_per_ms, bucket.burst, bucket.cost, int(bucket.tenant_share)]
        keys = [f"{PREFIX}:{route.name}:pause", active_tenants_key(route.name)]
        booked, wait_ms = self._book(keys=keys + [b.key for b in buckets], args=args)
        return Booking(bool(booked), int(wait_ms))

    def settle_tokens(
        self,
        route: Route,
        model: str,
        tenant_id: str,
        *,
        taken: float,
        booked: float,
        used: float,
    ) -> None:
        """Correct the token buckets to what the request really used: give back what the
        route's take held beyond it, and square the tenant's booking (up or down)."""
        for bucket in self.buckets(route, model, tenant_id, taken):
            if not bucket.key.endswith(":tpm"):
                continue
            difference = (booked if bucket.tenant_share else taken) - used
            if difference > 0 or (bucket.tenant_share and difference < 0):
                self._adjust(
                    keys=[bucket.key],
                    args=["refund", difference, bucket.rate_per_ms, bucket.burst],
                )

    def observe(self, route: Route, headers: dict[str, str]) -> None:
        """Correct the route's buckets from the provider's remaining-capacity headers."""
        for kind, names in (
            ("rpm", ("x-ratelimit-remaining-requests", "anthropic-ratelimit-requests-remaining")),
            ("tpm", ("x-ratelimit-remaining-tokens", "anthropic-ratelimit-tokens-remaining")),
        ):
            limit = route.rpm if kind == "rpm" else route.tpm
            value = next((headers[n] for n in names if n in headers), None)
            if limit and value is not None and value.isdigit():
                self._adjust(
                    keys=[f"{PREFIX}:{route.name}:{kind}"],
                    args=["remaining", int(value), limit / 60_000, float(limit)],
                )

    def pause(self, route: Route, seconds: float) -> None:
        """Hold every request to the route for ``seconds`` (a 429 with Retry-After)."""
        self._pause(keys=[f"{PREFIX}:{route.name}:pause"], args=[max(1, math.ceil(seconds * 1000))])

    def acquire_slot(self, route: Route, tenant_id: str) -> Slot | SlotRefusal:
        """An in-flight slot on the route, or why not: the route is full, or the tenant
        already holds its share of it."""
        if not route.max_in_flight:
            return Slot(route.name, tenant_id, "")
        slot = Slot(route.name, tenant_id, uuid.uuid4().hex)
        got = self._acquire_slot(
            keys=[*self._slot_keys(slot), active_tenants_key(route.name)],
            args=[LEASE_TTL_MS, route.max_in_flight, slot.lease_id],
        )
        if got == 0:
            return SlotRefusal.ROUTE_FULL
        if got < 0:
            return SlotRefusal.OVER_SHARE
        with self._lock:
            self._held.add(slot)
        return slot

    def release_slot(self, slot: Slot) -> None:
        if not slot.lease_id:
            return
        with self._lock:
            self._held.discard(slot)
        for key in self._slot_keys(slot):
            self.client.zrem(key, slot.lease_id)

    def renew_slots(self) -> None:
        """Extend the leases this process holds; a process that dies stops renewing, and its
        slots lapse within ``LEASE_TTL_MS``."""
        with self._lock:
            held = list(self._held)
        if not held:
            return
        expiry = int(self.client.time()[0] * 1000) + LEASE_TTL_MS
        pipe = self.client.pipeline(transaction=False)
        for slot in held:
            for key in self._slot_keys(slot):
                pipe.zadd(key, {slot.lease_id: expiry}, xx=True)
        pipe.execute()

    def in_flight(self, route: str) -> int:
        now_ms = int(self.client.time()[0] * 1000)
        return int(self.client.zcount(f"{PREFIX}:{route}:inflight", now_ms, "+inf"))

    @staticmethod
    def _slot_keys(slot: Slot) -> list[str]:
        base = f"{PREFIX}:{slot.route}"
        return [f"{base}:inflight", f"{base}:tenant:{slot.tenant_id}:inflight"]
