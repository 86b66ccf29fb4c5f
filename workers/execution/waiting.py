"""A job waiting on an async provider job: when to poll it next, and what a poll's answer
means for it."""

from dataclasses import replace
from datetime import datetime

from schema.tables import utcnow
from store.moves import Claim, Outcome
from workers.execution.calls import Call
from workers.execution.outcomes import provider_job_ended, situation_of, still_running
from workers.polling import PollState, next_poll_in_s
from workers.providers import AsyncState, PollResult
from workers.runtime import Runtime


def next_poll_s(
    runtime: Runtime, claim: Claim, call: Call, poll: PollResult, submitted_at: datetime
) -> float:
    """The adaptive policy's next interval, aimed at the model's learned duration; sparse
    when the route's provider calls back."""
    state = PollState(
        elapsed_s=(utcnow() - submitted_at).total_seconds(),
        expected_s=runtime.durations.median(claim.current_model) or call.spec.expected_duration_s,
        progress=poll.progress,
        hint_s=poll.poll_after_s,
        callbacks=call.route.callbacks,
    )
    return next_poll_in_s(state)


def polled(
    runtime: Runtime, claim: Claim, call: Call, poll: PollResult, submitted_at: datetime
) -> Outcome:
    """The outcome of a poll: still running, done, failed or canceled at the provider. A
    success teaches the model's running median duration."""
    if poll.state == AsyncState.RUNNING:
        return still_running(poll, next_poll_s(runtime, claim, call, poll, submitted_at))
    if poll.state == AsyncState.SUCCEEDED and poll.result is not None:
        runtime.durations.record(claim.current_model, (utcnow() - submitted_at).total_seconds())
    return provider_job_ended(claim, call, poll, situation_of(runtime.routes, claim, call))


def with_provider_job(claim: Claim, provider_job_id: str) -> Claim:
    return replace(claim, provider_job_id=provider_job_id)
