"""A job's whole say with Redis about a provider call: one script before it and one after.

Before (``check``): the operator's pause, the circuit (taking the half-open probe), a
429's pause, the tenant's booking, an in-flight slot and the route's take, in that order,
in one round trip; a refusal gives back whatever the script had taken. After
(``settle``): the breaker's record, a 429's pause, the corrections from rate-limit
headers and token usage, and the slot and probe given back, in one round trip, which
also reads a version key the caller names (made up if missing), so that a job's end
costs one Redis call. A route
without limits has no buckets and no slot, so its scripts touch only the circuit and the
pause keys. See ``workers/ratelimit.py`` and ``workers/breaker.py`` for the models.

What an admitted call holds is a ``Hold`` value: any thread may settle it or give it
back, and only the first to do so frees the slot and the probe (the process keeps the
open holds, which is also what the slot renewer renews).
"""

import threading
import uuid
from dataclasses import dataclass
from enum import Enum

import redis

from schema.names import active_tenants_key, route_hold_key, route_limit_key
from schema.routes import Route
from workers import breaker, ratelimit
from workers.ratelimit import ACTIVE_WINDOW_MS, LEASE_TTL_MS, Adjustment

ADMIT = (
    ratelimit.CLOCK
    + breaker.CIRCUIT
    + ratelimit.GCRA
    + ratelimit.SLOTS
    + """
if redis.call('EXISTS', KEYS[1]) == 1 then return {'held', tonumber(ARGV[2]), 0} end
local wait, probe = circuit(KEYS[2], KEYS[3], tonumber(ARGV[1]))
if wait > 0 then return {'open', wait, 0} end
local function refuse(verdict, ms)
  if probe then redis.call('DEL', KEYS[3]) end
  return {verdict, ms, 0}
end
local shares, takes, limit = tonumber(ARGV[10]), tonumber(ARGV[11]), tonumber(ARGV[7])
local active = 1
if shares + takes + limit > 0 then
  active = touch_tenant(KEYS[5], ARGV[5], tonumber(ARGV[6]))
end
if ARGV[3] ~= '1' then
  local booked, ms = gcra(KEYS[4], 8, 12, shares, tonumber(ARGV[4]), active)
  if not booked then return refuse('beyond_horizon', ms) end
  if ms > 0 then return refuse('booked', ms) end
end
if limit > 0 then
  local refused = take_slot(KEYS[6], KEYS[7], limit, active, ARGV[8], tonumber(ARGV[9]))
  if refused then return refuse(refused, 0) end
end
local taken, ms = gcra(KEYS[4], 8 + shares, 12 + 3 * shares, takes, 0, 1)
if not taken then
  if limit > 0 then release_slot(KEYS[6], KEYS[7], ARGV[8]) end
  return refuse('take_wait', ms)
end
return {'admitted', 0, probe and 1 or 0}
"""
)

SETTLE = (
    ratelimit.CLOCK
    + breaker.CIRCUIT
    + ratelimit.GCRA
    + ratelimit.SLOTS
    + ratelimit.HOLD
    + """
local probe = ARGV[3] == '1'
if ARGV[1] == '1' then
  local limits = {tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])}
  record(KEYS[1], KEYS[2], KEYS[3], ARGV[2] == '1', probe, limits)
elseif probe then
  redis.call('DEL', KEYS[2])
end
if tonumber(ARGV[8]) > 0 then hold(KEYS[4], tonumber(ARGV[8])) end
if ARGV[9] ~= '' then release_slot(KEYS[5], KEYS[6], ARGV[9]) end
local adjusted = tonumber(ARGV[10])
for i = 1, adjusted do
  local base = 10 + (i - 1) * 4
  adjust(KEYS[6 + i], ARGV[base + 1], tonumber(ARGV[base + 2]), tonumber(ARGV[base + 3]),
    tonumber(ARGV[base + 4]))
end
local version = ARGV[11 + 4 * adjusted]
if version then
  redis.call('SET', KEYS[7 + adjusted], version, 'NX')
  return redis.call('GET', KEYS[7 + adjusted])
end
return false
"""
)


class Verdict(Enum):
    """What ``check`` said: admitted, or why not and what ``wait_ms`` means."""

    ADMITTED = "admitted"
    HELD = "held"  # an operator paused the route: ask again in wait_ms
    OPEN = "open"  # the circuit is open: its next probe is in wait_ms
    BEYOND_HORIZON = "beyond_horizon"  # nothing booked: the tenant's share is full that far
    BOOKED = "booked"  # booked on the tenant's share, to go in wait_ms
    OVER_SHARE = "over_share"  # the tenant holds its share of the in-flight slots
    ROUTE_FULL = "route_full"  # every in-flight slot is taken
    TAKE_WAIT = "take_wait"  # the route's own capacity frees in wait_ms


@dataclass(frozen=True)
class Hold:
    """What an admitted call holds until settled: maybe an in-flight slot, maybe the probe."""

    route: str
    tenant_id: str
    lease_id: str
    slot: bool
    probe: bool


@dataclass(frozen=True)
class Answer:
    verdict: Verdict
    wait_ms: int
    hold: Hold | None = None


@dataclass(frozen=True)
class Report:
    """What a call to the provider came to, for the bookkeeping after it."""

    failed: bool
    pause_ms: int = 0
    adjustments: tuple[Adjustment, ...] = ()


class Limits:
    """The circuit, rate limits and in-flight slots of one worker process's calls."""

    def __init__(self, client: redis.Redis, horizon_ms: int = 20_000) -> None:
        self.client = client
        self.horizon_ms = horizon_ms
        self._admit = client.register_script(ADMIT)
        self._settle = client.register_script(SETTLE)
        self._open: dict[str, Hold] = {}
        self._lock = threading.Lock()

    def check(
        self, route: Route, model: str, tenant_id: str, tokens: tuple[float, float], booked: bool
    ) -> Answer:
        """May a call go to ``route``/``model`` now: one script call. ``tokens`` are what
        the route's take counts and what the tenant's booking counts (unless ``booked``)."""
        taken, expected = tokens
        shares = [b for b in ratelimit.buckets(route, model, tenant_id, expected) if b.tenant_share]
        takes = [b for b in ratelimit.buckets(route, model, tenant_id, taken) if not b.tenant_share]
        lease_id = uuid.uuid4().hex
        keys = [
            route_hold_key(route.name),
            *breaker.circuit_keys(route.name)[:2],
            route_limit_key(route.name, "pause"),
            active_tenants_key(route.name),
            *ratelimit.slot_keys(route.name, tenant_id),
            *(bucket.key for bucket in shares + takes),
        ]
        args: list[float | str] = [
            breaker.probe_ttl_ms(route),
            breaker.PAUSED_RECHECK_MS,
            int(booked),
            self.horizon_ms,
            tenant_id,
            ACTIVE_WINDOW_MS,
            route.max_in_flight or 0,
            lease_id,
            LEASE_TTL_MS,
            len(shares),
            len(takes),
        ]
        for bucket in shares + takes:
            args += [bucket.rate_per_ms, bucket.burst, bucket.cost]
        verdict, wait_ms, probe = self._admit(keys=keys, args=args)
        answer = Answer(Verdict(verdict.decode()), int(wait_ms))
        if answer.verdict != Verdict.ADMITTED:
            return answer
        hold = Hold(route.name, tenant_id, lease_id, bool(route.max_in_flight), bool(probe))
        if hold.slot or hold.probe:
            with self._lock:
                self._open[lease_id] = hold
        return Answer(Verdict.ADMITTED, 0, hold)

    def settle(
        self, hold: Hold, route: Route, report: Report, version_key: str | None = None
    ) -> bytes | None:
        """Record the call's outcome and corrections, and free what ``hold`` still holds:
        one script call. It returns the value at ``version_key``, a new random version
        if there was none."""
        lease, probe = self._close(hold)
        record = [1, int(report.failed), int(probe), *breaker.thresholds(route), report.pause_ms]
        return self._run_settle(hold, record, lease, report.adjustments, version_key)

    def give_back(self, hold: Hold) -> None:
        """Free the slot and the probe of a call that will not happen or is settled; no
        round trip when there is nothing left to free."""
        lease, probe = self._close(hold)
        if lease or probe:
            self._run_settle(hold, [0, 0, int(probe), 0, 0, 0, 0, 0], lease, ())

    def _close(self, hold: Hold) -> tuple[str, bool]:
        """The lease and the probe ``hold`` still has to free; none once freed."""
        with self._lock:
            if self._open.pop(hold.lease_id, None) is None:
                return "", False
        return (hold.lease_id if hold.slot else ""), hold.probe

    def _run_settle(
        self,
        hold: Hold,
        record: list[float],
        lease: str,
        adjustments: tuple[Adjustment, ...],
        version_key: str | None = None,
    ) -> bytes | None:
        keys = [
            *breaker.circuit_keys(hold.route),
            route_limit_key(hold.route, "pause"),
            *ratelimit.slot_keys(hold.route, hold.tenant_id),
        ]
        args: list[float | str] = [*record, lease, len(adjustments)]
        for adjustment in adjustments:
            keys.append(adjustment.key)
            args += [adjustment.mode, adjustment.value, adjustment.rate_per_ms, adjustment.burst]
        if version_key is not None:
            keys.append(version_key)
            args.append(uuid.uuid4().hex)
        return self._settle(keys=keys, args=args)  # type: ignore[no-any-return]

    def renew_slots(self) -> None:
        """Extend the leases this process holds; a process that dies stops renewing, and its
        slots lapse within ``LEASE_TTL_MS``."""
        with self._lock:
            held = [hold for hold in self._open.values() if hold.slot]
        if not held:
            return
        expiry = int(self.client.time()[0] * 1000) + LEASE_TTL_MS
        pipe = self.client.pipeline(transaction=False)
        for hold in held:
            for key in ratelimit.slot_keys(hold.route, hold.tenant_id):
                pipe.zadd(key, {hold.lease_id: expiry}, xx=True)
        pipe.execute()

    def in_flight(self, route: str) -> int:
        """Calls in flight on ``route`` now, by every worker."""
        now_ms = int(self.client.time()[0] * 1000)
        return int(self.client.zcount(route_limit_key(route, "inflight"), now_ms, "+inf"))
