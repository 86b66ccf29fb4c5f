"""Turning what an attempt or a poll saw into the ``Outcome`` the state machine writes: the
attempt row, the job's next status and columns, the cost and the next message."""

import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from schema.errors import AttemptError, ErrorClass
from schema.jobs import JobStatus
from schema.names import POLL_JOB, RUN_JOB
from schema.pricing import cost_micros
from schema.routes import Routes
from schema.tables import utcnow
from store.moves import AttemptRecord, Claim, NextMessage, Outcome
from workers.execution.calls import Call, chain
from workers.execution.policy import Decision, FallBack, Retry, Situation, decide
from workers.providers import AsyncState, PollResult, ProviderError, ProviderResult


@dataclass(frozen=True)
class Started:
    """When an attempt began: the wall-clock time it records and a clock for its latency."""

    at: datetime = field(default_factory=utcnow)
    clock: float = field(default_factory=time.monotonic)

    def latency_ms(self) -> int:
        return int((time.monotonic() - self.clock) * 1000)


def usage_columns(usage: dict[str, float]) -> dict[str, Any]:
    """An attempt's usage, raw and in the columns usage reports sum."""
    return {
        "usage": usage or None,
        "input_tokens": int(usage.get("input_tokens", 0)),
        "output_tokens": int(usage.get("output_tokens", 0)),
        "images": int(usage.get("images", 0)),
        "video_seconds": float(usage.get("video_seconds", 0)),
        "predict_seconds": float(usage.get("predict_seconds", 0)),
    }


def attempt_record(
    status: str,
    started: Started | None = None,
    *,
    result: ProviderResult | None = None,
    error: AttemptError | None = None,
    cost: int = 0,
    http_status: int | None = None,
    request_id: str | None = None,
) -> AttemptRecord:
    """The values that close an attempt's row; ``started`` times an attempt that ends with
    this call (a poll that closes an async job's attempt has none)."""
    values: dict[str, Any] = {
        "status": status,
        "error_class": error.error_class if error else None,
        "error_message": error.message if error else None,
        **usage_columns(result.usage if result else {}),
        "cost_micros": cost,
        "finished_at": utcnow(),
    }
    if started is not None:
        values |= {
            "http_status": http_status or (error.http_status if error else None),
            "provider_request_id": request_id or (error.request_id if error else None),
            "latency_ms": started.latency_ms(),
        }
    return AttemptRecord(values)


def succeeded(
    claim: Claim, call: Call, result: ProviderResult, started: Started, *, cached: bool = False
) -> Outcome:
    cost = 0 if cached else cost_micros(call.spec, result.usage)
    attempt = attempt_record(
        "cached" if cached else "succeeded",
        started,
        result=result,
        cost=cost,
        http_status=result.http_status,
        request_id=result.request_id,
    )
    return Outcome(JobStatus.SUCCEEDED, success_values(claim, result, cached), attempt, cost)


def success_values(claim: Claim, result: ProviderResult, cached: bool) -> dict[str, Any]:
    return {
        "output": result.output,
        "usage": result.usage,
        "provider_request_id": result.request_id,
        "served_by": claim.current_model,
        "cached": cached,
        "error": None,
        "progress": 100.0 if claim.provider_job_id else None,
    }


def still_running(poll: PollResult, delay_s: float, started_at: datetime | None) -> Outcome:
    """A waiting job whose provider job goes on: poll again in ``delay_s``."""
    values = {
        "progress": poll.progress,
        "next_poll_at": utcnow() + timedelta(seconds=delay_s),
        "provider_started_at": started_at,
    }
    return Outcome(JobStatus.WAITING, values, next=NextMessage(POLL_JOB, delay_s))


def submitted(
    poll: PollResult, started: Started, delay_s: float, started_at: datetime | None
) -> Outcome:
    """An async job its provider accepted: the job waits, polled in ``delay_s``;
    ``started_at`` is when it was seen started (None while in the provider's queue)."""
    attempt = attempt_record(
        "submitted",
        started,
        http_status=poll.http_status,
        request_id=poll.request_id,
    )
    values = {
        "provider_job_id": poll.provider_job_id,
        "progress": poll.progress,
        "next_poll_at": utcnow() + timedelta(seconds=delay_s),
        "polls": 0,
        "provider_started_at": started_at,
    }
    return Outcome(JobStatus.WAITING, values, attempt, next=NextMessage(POLL_JOB, delay_s))


def provider_job_ended(claim: Claim, call: Call, poll: PollResult, situation: Situation) -> Outcome:
    """A provider job that is done: succeeded (with its cost), or failed or canceled there;
    a failure the provider calls passing is retried or handed on like any other."""
    if poll.state == AsyncState.SUCCEEDED and poll.result is not None:
        cost = cost_micros(call.spec, poll.result.usage)
        attempt = attempt_record("succeeded", result=poll.result, cost=cost)
        values = success_values(claim, poll.result, cached=False)
        return Outcome(JobStatus.SUCCEEDED, values, attempt, cost)
    error = poll.error or ProviderError(
        ErrorClass.PROVIDER_JOB_FAILED, f"provider job {poll.state}", retryable=False
    )
    return after_failure(error, decide(error, situation), attempt_record("failed", error=error))


def situation_of(
    routes: Routes, claim: Claim, call: Call | None, *, may_continue: bool = True
) -> Situation:
    """Where a claimed job stands for the retry policy; nothing follows a job whose route
    could not even be prepared."""
    return Situation(
        route_attempt=claim.route_attempt,
        max_attempts=call.route.max_attempts if call else 0,
        chain=chain(routes, claim.model) if call else (),
        current_model=claim.current_model,
        deadline=claim.deadline_at,
        now=utcnow(),
        may_continue=may_continue and call is not None,
    )


def after_failure(error: AttemptError, decision: Decision, attempt: AttemptRecord) -> Outcome:
    """The outcome of a failed attempt, as the retry policy decided."""
    requeued = {"error": _doc(error), "provider_job_id": None, "next_poll_at": None}
    if isinstance(decision, Retry):
        next_message = NextMessage(RUN_JOB, decision.delay_s)
        return Outcome(JobStatus.QUEUED, requeued, attempt, next=next_message)
    if isinstance(decision, FallBack):
        values = {
            **requeued,
            "current_model": decision.model,
            "route": decision.model.partition("/")[0],
            "route_attempts": 0,
        }
        return Outcome(JobStatus.QUEUED, values, attempt, next=NextMessage(RUN_JOB))
    return Outcome(decision.status, {"error": _doc(decision.error)}, attempt)


def _doc(error: AttemptError) -> dict[str, str]:
    return {"type": str(error.error_class), "message": error.message}
