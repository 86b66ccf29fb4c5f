"""May a queued job call its provider now? The circuit, the rate limits and the in-flight
slots decide, before the job is claimed, so waiting never uses up an attempt.

A short wait happens in the worker thread; a longer one re-enqueues the message with the
exact delay (and, when capacity was booked, a ``booked`` flag so it is not booked
twice). A tenant already holding its share of the route's in-flight slots is deferred
at once, so a burst of its messages never pins the threads another tenant needs. An
open circuit sends the job to its fallback route if it has one, or makes it wait for
the circuit's next probe. A route an operator paused holds its jobs, queued, until resumed.
"""

import random
import time
from dataclasses import dataclass
from typing import Any

from dramatiq import Message

from infra import metrics
from schema.names import JOBS_QUEUE, RUN_JOB
from schema.pricing import estimate_input_tokens, max_output_tokens
from schema.routes import Protocol, Route
from store.moves import JobHead
from workers.ratelimit import Slot, SlotRefusal
from workers.runtime import Runtime

INLINE_WAIT_MS = 500
SLOT_POLL_MS = 50
SLOT_RETRY_MS = 500
# A booked job comes back at half its wait: its tenant's timeline was booked with an
# estimate, and calls that use less free the route's own capacity sooner; the route's
# check at start keeps the provider's limit either way.
EARLY_RETURN = 2
TOKEN_PROTOCOLS = (Protocol.OPENAI_CHAT, Protocol.ANTHROPIC_MESSAGES)


@dataclass(frozen=True)
class Admitted:
    slot: Slot
    tokens: float
    expected_tokens: float
    probe: bool


@dataclass(frozen=True)
class Deferred:
    delay_ms: int
    booked: bool


@dataclass(frozen=True)
class CircuitOpen:
    """The route's circuit is open; ``wait_ms`` until it lets a probe through."""

    wait_ms: int


def request_tokens(route: Route, model: str, input: dict[str, Any]) -> tuple[float, float]:
    """Tokens the request counts against a TPM limit before the answer says otherwise:
    the most it can use (what providers check, with ``max_tokens``), and what it is
    expected to use (half of ``max_tokens``, as completions seldom use all of it), which
    books the tenant's share and is squared with the real usage after the call."""
    if route.protocol not in TOKEN_PROTOCOLS:
        return 0, 0
    spec = route.models[model]
    outputs = max_output_tokens(spec, input) * int(input.get("n") or 1)
    prompt = estimate_input_tokens(route.protocol, input)
    return prompt + outputs, prompt + outputs / 2


def admit(
    runtime: Runtime,
    job: JobHead,
    route: Route,
    model: str,
    input: dict[str, Any],
    booked: bool,
) -> Admitted | Deferred | CircuitOpen:
    permit = runtime.breaker.allow(route)
    if permit.paused:
        return Deferred(permit.wait_ms + random.randint(0, SLOT_RETRY_MS), booked=booked)
    if not permit.allowed:
        return CircuitOpen(permit.wait_ms)
    try:
        verdict = _limits(runtime, job, route, model, input, booked)
    except BaseException:
        if permit.probe:
            runtime.breaker.release_probe(route.name)
        raise
    if isinstance(verdict, Deferred):
        if permit.probe:
            runtime.breaker.release_probe(route.name)
        return verdict
    slot, tokens, expected = verdict
    return Admitted(slot, tokens, expected, permit.probe)


def _limits(
    runtime: Runtime,
    job: JobHead,
    route: Route,
    model: str,
    input: dict[str, Any],
    booked: bool,
) -> tuple[Slot, float, float] | Deferred:
    """Capacity for the call: the tenant's booking, an in-flight slot, the route's take."""
    tokens, expected = request_tokens(route, model, input)
    limiter = runtime.limiter
    if not booked:
        booking = limiter.book(route, model, job.tenant_id, expected)
        if not booking.booked:
            spread = random.uniform(0, limiter.horizon_ms / 2)
            return Deferred(booking.wait_ms + int(spread), booked=False)
        if booking.wait_ms > INLINE_WAIT_MS:
            return Deferred(booking.wait_ms // EARLY_RETURN, booked=True)
        time.sleep(booking.wait_ms / 1000)
    deadline = time.monotonic() + INLINE_WAIT_MS / 1000
    while not isinstance(slot := limiter.acquire_slot(route, job.tenant_id), Slot):
        if slot == SlotRefusal.OVER_SHARE or time.monotonic() > deadline:
            return Deferred(SLOT_RETRY_MS + random.randint(0, SLOT_RETRY_MS), booked=True)
        time.sleep(SLOT_POLL_MS / 1000)
    try:
        while not (taken := limiter.take(route, model, job.tenant_id, tokens)).booked:
            if taken.wait_ms > INLINE_WAIT_MS:
                limiter.release_slot(slot)
                return Deferred(taken.wait_ms + random.randint(0, SLOT_RETRY_MS), booked=True)
            time.sleep(taken.wait_ms / 1000)
    except BaseException:
        limiter.release_slot(slot)
        raise
    return slot, tokens, expected


def defer(runtime: Runtime, job_id: str, route: str, deferred: Deferred) -> None:
    """Send the job's message again after ``delay_ms``; the job stays queued meanwhile."""
    metrics.CAPACITY_WAIT_SECONDS.labels(route).observe(deferred.delay_ms / 1000)
    message = Message(
        queue_name=JOBS_QUEUE,
        actor_name=RUN_JOB,
        args=(),
        kwargs={"job_id": job_id, "booked": deferred.booked},
        options={},
    )
    runtime.broker.enqueue(message, delay=max(1, deferred.delay_ms))
