"""A job waiting on an async provider job: when to poll it next, and what a poll's answer
means for it."""

from dataclasses import replace
from datetime import datetime, timedelta

from schema.tables import utcnow
from store.moves import Claim, Outcome
from workers.execution.calls import Call
from workers.execution.outcomes import provider_job_ended, situation_of, still_running
from workers.polling import PollState, next_poll_in_s
from workers.providers import AsyncState, PollResult
from workers.runtime import Runtime


def seen_started(
    poll: PollResult,
    started_at: datetime | None,
    submitted_at: datetime,
    expected_s: float | None = None,
) -> datetime | None:
    """When the provider job started, as first seen: started_at if known; if this answer is
    the first to show it out of the provider's queue, now, less the share of the expected
    duration its progress shows done (a job first seen at 30 % started well before), but not
    before it was submitted; else None."""
    if started_at is not None or poll.queued or poll.state != AsyncState.RUNNING:
        return started_at
    ran_s = (poll.progress or 0.0) / 100 * (expected_s or 0.0)
    return max(utcnow() - timedelta(seconds=ran_s), submitted_at)


def expected_s(runtime: Runtime, claim: Claim, call: Call) -> float | None:
    """The model's learned median duration, else its configured one."""
    return runtime.durations.median(claim.current_model) or call.spec.expected_duration_s


def next_poll_s(
    runtime: Runtime,
    claim: Claim,
    call: Call,
    poll: PollResult,
    submitted_at: datetime,
    started_at: datetime | None,
) -> float:
    """The adaptive policy's next interval, aimed at the model's learned duration; time
    spent in the provider's queue does not count against it; sparse when the route's
    provider calls back."""
    state = PollState(
        elapsed_s=(utcnow() - (started_at or submitted_at)).total_seconds(),
        expected_s=expected_s(runtime, claim, call),
        progress=poll.progress,
        hint_s=poll.poll_after_s,
        queued=poll.queued,
        queue_position=poll.queue_position,
        callbacks=call.route.callbacks,
    )
    return next_poll_in_s(state)


def polled(
    runtime: Runtime,
    claim: Claim,
    call: Call,
    poll: PollResult,
    submitted_at: datetime,
    started_at: datetime | None = None,
) -> Outcome:
    """The outcome of a poll: still running, done, failed or canceled at the provider. A
    success teaches the model's running median duration, counted from its seen start (a job
    never seen started teaches nothing: its queued share is unknown)."""
    if poll.state == AsyncState.RUNNING:
        expected = expected_s(runtime, claim, call)
        started_at = seen_started(poll, started_at, submitted_at, expected)
        delay_s = next_poll_s(runtime, claim, call, poll, submitted_at, started_at)
        return still_running(poll, delay_s, started_at)
    if poll.state == AsyncState.SUCCEEDED and poll.result is not None and started_at is not None:
        ran_s = (utcnow() - started_at).total_seconds()
        runtime.durations.record(claim.current_model, ran_s)
    return provider_job_ended(claim, call, poll, situation_of(runtime.routes, claim, call))


def with_provider_job(claim: Claim, provider_job_id: str) -> Claim:
    return replace(claim, provider_job_id=provider_job_id)
