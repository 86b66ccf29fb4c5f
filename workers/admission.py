"""May a queued job call its provider now? The circuit, the rate limits and the in-flight
slots decide, before the job is claimed, so waiting never uses up an attempt.

A short wait happens in the worker thread; a longer one re-enqueues the message with the
exact delay (and, when capacity was booked, a ``booked`` flag so it is not booked
twice). A tenant already holding its share of the route's in-flight slots is deferred
at once, so a burst of its messages never pins the threads another tenant needs. An
open circuit sends the job to its fallback route if it has one, or makes it wait for
the circuit's next probe. A route an operator paused holds its jobs, queued, until resumed.
All of it is one script call (``workers/limits.py``); only a short wait repeats it.
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
from workers.limits import Answer, Hold, Verdict
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
    """Capacity granted: what the call holds, and the tokens it took and booked, so any
    thread can settle it after the call."""

    hold: Hold
    tokens: float
    expected_tokens: float


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
    """Capacity for the call, in one script call unless a short wait comes first: the
    circuit, the tenant's booking, an in-flight slot, the route's take."""
    tokens, expected = request_tokens(route, model, input)
    limits = runtime.limits
    slot_deadline = None
    while True:
        answer = limits.check(route, model, job.tenant_id, (tokens, expected), booked)
        if answer.hold is not None:
            return Admitted(answer.hold, tokens, expected)
        refusal = _refusal(answer, booked, limits.horizon_ms)
        if refusal is not None:
            return refusal
        booked = True
        wait_ms = answer.wait_ms
        if answer.verdict == Verdict.ROUTE_FULL:
            slot_deadline = slot_deadline or time.monotonic() + INLINE_WAIT_MS / 1000
            if time.monotonic() > slot_deadline:
                return Deferred(SLOT_RETRY_MS + random.randint(0, SLOT_RETRY_MS), booked=True)
            wait_ms = SLOT_POLL_MS
        time.sleep(wait_ms / 1000)


def _refusal(answer: Answer, booked: bool, horizon_ms: int) -> Deferred | CircuitOpen | None:
    """What a refusal comes to; None when a short wait in the thread will do, the
    tenant's share being booked by then."""
    jitter = random.randint(0, SLOT_RETRY_MS)
    match answer.verdict:
        case Verdict.HELD:
            return Deferred(answer.wait_ms + jitter, booked=booked)
        case Verdict.OPEN:
            return CircuitOpen(answer.wait_ms)
        case Verdict.BEYOND_HORIZON:
            return Deferred(answer.wait_ms + int(random.uniform(0, horizon_ms / 2)), booked=False)
        case Verdict.BOOKED if answer.wait_ms > INLINE_WAIT_MS:
            return Deferred(answer.wait_ms // EARLY_RETURN, booked=True)
        case Verdict.OVER_SHARE:
            return Deferred(SLOT_RETRY_MS + jitter, booked=True)
        case Verdict.TAKE_WAIT if answer.wait_ms > INLINE_WAIT_MS:
            return Deferred(answer.wait_ms + jitter, booked=True)
    return None


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
