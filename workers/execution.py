"""Running one job: claim it, call the provider (or the cache), record the attempt and move
the job on: succeeded, waiting on an async provider job, retried, handed to a fallback
route, or failed.

Execution is at-least-once, the outcome exactly-once: a job is claimed with a
conditional UPDATE (queued, or running with an expired lease), and every outcome is
written only while the claim is still ours (same status and attempt number). A
re-delivered message for a finished job therefore changes nothing. Provider calls happen
outside any transaction.
"""

import logging
import random
import time
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

import redis
from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.orm import Session

from infra import metrics
from schema.jobs import TERMINAL_STATUSES, JobStatus
from schema.names import CANCEL_JOB, JOBS_QUEUE, POLL_JOB, RUN_JOB
from schema.pricing import cost_micros
from schema.routes import ModelSpec, Route, UnknownModelError
from schema.tables import Job, JobAttempt, OutboxMessage, utcnow
from store import budgets, deadletters, outbox, webhook_events
from workers.admission import Admitted, CircuitOpen, Deferred, admit, defer
from workers.backoff import retry_delay_s
from workers.cache import cache_key
from workers.context import bind_job
from workers.polling import PollState, next_poll_in_s
from workers.providers import AsyncState, ErrorClass, PollResult, ProviderError, ProviderResult
from workers.providers.translate import translate
from workers.runtime import Runtime

logger = logging.getLogger(__name__)

# Failures that say the route cannot serve the model at all, so a fallback may help;
# other permanent errors (a bad request, a content policy refusal) would fail anywhere.
DEFAULT_PAUSE_S = 1.0
NOT_CALLED = frozenset(
    {ErrorClass.WORKER_LOST, ErrorClass.DEADLINE, ErrorClass.CONFIGURATION, ErrorClass.INTERNAL}
)
ROUTE_FAULTS = frozenset({ErrorClass.AUTH, ErrorClass.NOT_FOUND, ErrorClass.CONFIGURATION})
# Failures that are the request's own and end the job as ``failed``. Anything else that
# ends a job (attempts exhausted, a route fault with no fallback left, an unplanned
# error) dead-letters it for a person to review and requeue.
EXPECTED_FAILURES = frozenset(
    {
        ErrorClass.BAD_REQUEST,
        ErrorClass.CONTENT_POLICY,
        ErrorClass.TOO_LARGE,
        ErrorClass.PROVIDER_JOB_FAILED,
        ErrorClass.DEADLINE,
        ErrorClass.JOB_TIMEOUT,
    }
)


@dataclass(frozen=True)
class Claim:
    job_id: str
    tenant_id: str
    attempt: int
    route_attempt: int
    model: str
    current_model: str
    input: dict[str, Any]
    cache_enabled: bool
    budget_period_start: datetime | None
    reserved_micros: int
    provider_job_id: str | None = None


@dataclass(frozen=True)
class Call:
    """The route, model and input one attempt uses."""

    route: Route
    model: str
    spec: ModelSpec
    input: dict[str, Any]


@dataclass
class Outcome:
    """What one transaction writes after an attempt or a poll."""

    attempt: dict[str, Any] | None
    job: dict[str, Any]
    spent_micros: int = 0
    release: bool = False
    message: tuple[str, float] | None = None
    cache: tuple[str, dict[str, Any], int] | None = None
    dead_letter: ProviderError | None = None


def run_job(runtime: Runtime, job_id: str, booked: bool = False) -> None:
    """Execute ``job_id`` once if it is ours to run; otherwise leave it be.

    A queued job first passes admission (circuit, rate limits, in-flight slots); waiting
    there re-enqueues the message and costs no attempt.
    """
    with runtime.sessions() as session:
        job = session.get(Job, job_id)
    if job is None:
        logger.warning("run_job: no job %s", job_id)
        return
    admitted = None
    lapsed = job.lease_expires_at is not None and job.lease_expires_at < utcnow()
    if job.status == JobStatus.QUEUED or (job.status == JobStatus.RUNNING and lapsed):
        try:
            call = _prepare(runtime, job.model, job.current_model, job.input)
        except ProviderError:
            call = None
        if call is not None:
            verdict = admit(runtime, job, call.route, call.model, call.input, booked)
            if isinstance(verdict, CircuitOpen):
                if not _fall_back_now(runtime, job):
                    jitter_ms = random.randint(0, 1000)
                    defer(
                        runtime,
                        job_id,
                        call.route.name,
                        Deferred(verdict.wait_ms + jitter_ms, booked),
                    )
                return
            if isinstance(verdict, Deferred):
                defer(runtime, job_id, call.route.name, verdict)
                return
            admitted = verdict
    try:
        ran = _run_claimed(runtime, job, admitted)
    finally:
        if admitted is not None:
            runtime.limiter.release_slot(admitted.slot)
    if not ran and admitted is not None and admitted.probe:
        runtime.breaker.release_probe(admitted.slot.route)


def _run_claimed(runtime: Runtime, job: Job, admitted: Admitted | None) -> bool:
    """Claim the job and run one attempt; False if it was not ours to run."""
    with runtime.sessions.begin() as session:
        lease_s = _lease_s(runtime, job.current_model)
        claim = _claim(session, job, running_from=JobStatus.QUEUED, lease_s=lease_s)
        recheck = None if claim else _recheck_later(session, job.id, RUN_JOB, JobStatus.RUNNING)
    if recheck is not None:
        outbox.send(runtime.sessions, runtime.broker, [recheck])
    if claim is None:
        return False

    started_at, started = utcnow(), time.monotonic()
    call = None
    try:
        call = _prepare(runtime, claim.model, claim.current_model, claim.input)
        if claim.route_attempt > call.route.max_attempts:
            raise ProviderError(
                ErrorClass.WORKER_LOST,
                f"attempts exhausted: the worker holding attempt {claim.attempt - 1} was lost",
                retryable=False,
            )
        if job.deadline_at is not None and utcnow() >= job.deadline_at:
            raise ProviderError(ErrorClass.DEADLINE, "the job's deadline passed", retryable=False)
        outcome = _attempt(runtime, claim, call, started_at, started, admitted)
    except ProviderError as error:
        if call is not None and admitted is not None:
            _after_failure(runtime, call.route, error, admitted)
        outcome = _failed(
            runtime, claim, call, error, started_at, started, deadline=job.deadline_at
        )
    except Exception as exc:
        logger.exception("run_job: %s broke in the adapter", job.id)
        error = ProviderError(ErrorClass.INTERNAL, f"{type(exc).__name__}: {exc}", retryable=False)
        outcome = _failed(runtime, claim, None, error, started_at, started, final=True)
    _commit(runtime, claim, outcome, running=JobStatus.RUNNING)
    return True


def _after_failure(
    runtime: Runtime, route: Route, error: ProviderError, admitted: Admitted
) -> None:
    """Tell the breaker, and pause the whole route when the provider says to slow down.

    A failure raised before any call (lost worker, deadline, configuration) says nothing
    about the provider: a probe it held is only given back."""
    try:
        if error.error_class in NOT_CALLED:
            if admitted.probe:
                runtime.breaker.release_probe(route.name)
            return
        runtime.breaker.record(route, error.error_class, admitted.probe)
        if error.error_class == ErrorClass.RATE_LIMITED:
            runtime.limiter.pause(route, error.retry_after_s or DEFAULT_PAUSE_S)
    except redis.RedisError:
        logger.warning("could not record a failure on %s", route.name, exc_info=True)


def _after_success(
    runtime: Runtime, call: Call, tenant_id: str, result: ProviderResult, admitted: Admitted
) -> None:
    """Tell the breaker, learn from the rate-limit headers, give back unused tokens.

    A paid-for result must not be lost to a Redis hiccup here, so errors only log."""
    try:
        runtime.breaker.record(call.route, None, admitted.probe)
        runtime.limiter.observe(call.route, result.rate_limit_headers)
        usage = result.usage
        if "input_tokens" in usage or "output_tokens" in usage:
            runtime.limiter.settle_tokens(
                call.route,
                call.model,
                tenant_id,
                taken=admitted.tokens,
                booked=admitted.expected_tokens,
                used=usage.get("input_tokens", 0) + usage.get("output_tokens", 0),
            )
    except redis.RedisError:
        logger.warning("could not settle a call on %s", call.route.name, exc_info=True)


def _fall_back_now(runtime: Runtime, job: Job) -> bool:
    """Move a queued job off a route whose circuit is open, if it has somewhere to go."""
    fallback = _next_fallback(runtime, job.model, job.current_model)
    if fallback is None:
        return False
    with runtime.sessions.begin() as session:
        moved = session.execute(
            update(Job)
            .where(
                Job.id == job.id,
                Job.status == JobStatus.QUEUED,
                Job.current_model == job.current_model,
            )
            .values(
                current_model=fallback,
                route=fallback.partition("/")[0],
                route_attempts=0,
                updated_at=utcnow(),
            )
        ).rowcount
        row = outbox.stage(session, JOBS_QUEUE, RUN_JOB, {"job_id": job.id}) if moved else None
        session.flush()
    if row is not None:
        logger.info("job %s: circuit open on %s, now on %s", job.id, job.route, fallback)
        outbox.send(runtime.sessions, runtime.broker, [row])
    return True


def poll_job(runtime: Runtime, job_id: str) -> None:
    """Ask the provider how a waiting job is doing, and move it on when it is done."""
    with runtime.sessions.begin() as session:
        job = session.get(Job, job_id)
        if job is None or job.status != JobStatus.WAITING:
            return
        lease_s = _lease_s(runtime, job.current_model)
        claim = _claim(session, job, running_from=JobStatus.WAITING, lease_s=lease_s, poll=True)
        recheck = None if claim else _recheck_later(session, job.id, POLL_JOB, JobStatus.WAITING)
        submitted_at = (
            session.scalar(
                select(JobAttempt.started_at).where(
                    JobAttempt.job_id == job_id, JobAttempt.number == job.attempts
                )
            )
            or utcnow()
        )
    if recheck is not None:
        outbox.send(runtime.sessions, runtime.broker, [recheck])
    if claim is None or claim.provider_job_id is None:
        return

    call = None
    try:
        call = _prepare(runtime, claim.model, claim.current_model, claim.input)
        adapter = runtime.adapter(call.route)
        poll = adapter.poll(claim.provider_job_id)  # type: ignore[union-attr]
        if poll.state == AsyncState.RUNNING and (late := _overdue(call, job, submitted_at)):
            adapter.cancel(claim.provider_job_id)  # type: ignore[union-attr]
            raise late
    except ProviderError as error:
        if error.retryable and call is not None and (late := _overdue(call, job, submitted_at)):
            _cancel_quietly(runtime, call, claim.provider_job_id)
            error = late
        if not error.retryable:
            outcome = _failed(runtime, claim, call, error, None, None, final=True, poll=True)
            _commit(runtime, claim, outcome, running=JobStatus.WAITING)
            return
        poll = PollResult(claim.provider_job_id, AsyncState.RUNNING, error.request_id, 0)
        logger.info("poll_job: %s: %s; polling again later", job_id, error.error_class)
    outcome = _polled(runtime, claim, call, poll, submitted_at)
    _commit(runtime, claim, outcome, running=JobStatus.WAITING)


def _overdue(call: Call, job: Job, submitted_at: datetime) -> ProviderError | None:
    """Why a still-running provider job must stop now: the model's hard timeout, or the
    job's own deadline."""
    elapsed_s = (utcnow() - submitted_at).total_seconds()
    limit_s = call.spec.max_duration_s
    if limit_s and elapsed_s > limit_s:
        message = f"the provider job ran {elapsed_s:.0f}s, past the model's {limit_s:.0f}s limit"
        return ProviderError(ErrorClass.JOB_TIMEOUT, message, retryable=False)
    if job.deadline_at is not None and utcnow() >= job.deadline_at:
        return ProviderError(ErrorClass.DEADLINE, "the job's deadline passed", retryable=False)
    return None


def _cancel_quietly(runtime: Runtime, call: Call, provider_job_id: str) -> None:
    """Best effort: a provider job we give up on should stop costing money."""
    try:
        runtime.adapter(call.route).cancel(provider_job_id)  # type: ignore[union-attr]
    except ProviderError as error:
        logger.warning("could not cancel %s at the provider: %s", provider_job_id, error.message)


def cancel_at_provider(runtime: Runtime, job_id: str) -> None:
    """Stop the provider job of a job canceled while it waited, so it costs no more."""
    with runtime.sessions() as session:
        job = session.get(Job, job_id)
    if job is None or job.status != JobStatus.CANCELED or not job.provider_job_id:
        return
    try:
        call = _prepare(runtime, job.model, job.current_model, job.input)
        runtime.adapter(call.route).cancel(job.provider_job_id)  # type: ignore[union-attr]
    except ProviderError as error:
        if error.retryable:
            raise
        logger.warning("cancel_job: %s: provider refused: %s", job_id, error.message)


def _lease_s(runtime: Runtime, model_ref: str) -> float:
    try:
        route, _ = runtime.routes.resolve(model_ref)
    except UnknownModelError:
        return runtime.settings.job_lease_margin_s
    return runtime.lease_s(route)


def _claim(
    session: Session, job: Job, *, running_from: JobStatus, lease_s: float, poll: bool = False
) -> Claim | None:
    """Take the job with one conditional UPDATE; None if another worker holds it."""
    now = utcnow()
    lease_over = or_(Job.lease_expires_at.is_(None), Job.lease_expires_at < now)
    if poll:
        claimable = and_(Job.status == JobStatus.WAITING, lease_over)
        values: dict[str, Any] = {"polls": Job.polls + 1}
    else:
        claimable = or_(
            Job.status == running_from,
            and_(Job.status == JobStatus.RUNNING, Job.lease_expires_at < now),
        )
        values = {
            "status": JobStatus.RUNNING,
            "attempts": Job.attempts + 1,
            "route_attempts": Job.route_attempts + 1,
            "started_at": func.coalesce(Job.started_at, now),
        }
    claimed = session.execute(
        update(Job)
        .where(Job.id == job.id, claimable)
        .values(lease_expires_at=now + timedelta(seconds=lease_s), updated_at=now, **values)
        .returning(
            Job.tenant_id,
            Job.attempts,
            Job.route_attempts,
            Job.model,
            Job.current_model,
            Job.input,
            Job.cache_enabled,
            Job.budget_period_start,
            Job.reserved_micros,
            Job.provider_job_id,
        )
    ).one_or_none()
    if claimed is None:
        return None
    claim = Claim(job.id, *claimed)
    bind_job(
        tenant_id=claim.tenant_id,
        route=claim.current_model.partition("/")[0],
        model=claim.current_model,
        attempt=claim.attempt,
    )
    return claim


def _recheck_later(
    session: Session, job_id: str, actor: str, held_status: JobStatus
) -> OutboxMessage | None:
    """A job under another worker's live lease gets a message for when the lease ends,
    so a worker that died mid-call does not strand it."""
    job = session.get_one(Job, job_id, populate_existing=True)
    if job.status != held_status or job.lease_expires_at is None:
        return None
    delay_s = (job.lease_expires_at - utcnow()).total_seconds() + 1
    if delay_s <= 1:
        return None
    row = outbox.stage(session, JOBS_QUEUE, actor, {"job_id": job.id}, delay_s=delay_s)
    session.flush()
    return row


def _prepare(runtime: Runtime, model_ref: str, current_model: str, input: dict[str, Any]) -> Call:
    """The current route and model, with the job's input rewritten for its protocol."""
    try:
        route, model = runtime.routes.resolve(current_model)
        requested, _ = runtime.routes.resolve(model_ref)
    except UnknownModelError as exc:
        raise ProviderError(ErrorClass.CONFIGURATION, str(exc), retryable=False) from None
    spec = route.models[model]
    try:
        input = translate(requested.protocol, route.protocol, input, spec)
    except (ValueError, KeyError, TypeError) as exc:
        message = f"cannot carry the input to {route.protocol}: {exc}"
        raise ProviderError(ErrorClass.CONFIGURATION, message, retryable=False) from None
    return Call(route, model, spec, input)


def _chain(runtime: Runtime, model_ref: str) -> list[str]:
    return [model_ref, *runtime.routes.spec(model_ref).fallbacks]


def _attempt(
    runtime: Runtime,
    claim: Claim,
    call: Call,
    started_at: datetime,
    started: float,
    admitted: Admitted | None,
) -> Outcome:
    key = None
    if claim.cache_enabled and call.route.cache_ttl_s and not call.route.is_async:
        scope = "shared" if call.route.cache_shared else claim.tenant_id
        key = cache_key(call.route.name, call.model, call.input, scope)
        hit = runtime.cache.get(key, call.route.name)
        if hit is not None:
            if admitted is not None and admitted.probe:
                runtime.breaker.release_probe(call.route.name)
            result = ProviderResult(hit["output"], hit["usage"], hit["request_id"], 200)
            return _succeeded(claim, call, result, started_at, started, cached=True)
    adapter = runtime.adapter(call.route)
    if call.route.is_async:
        poll = adapter.submit(call.model, call.input)  # type: ignore[union-attr]
        if admitted is not None:
            submitted = ProviderResult(
                {}, {}, poll.request_id, poll.http_status, poll.rate_limit_headers
            )
            _after_success(runtime, call, claim.tenant_id, submitted, admitted)
        return _submitted(runtime, claim, call, poll, started_at, started)
    result = adapter.run(call.model, call.input)  # type: ignore[union-attr]
    if admitted is not None:
        _after_success(runtime, call, claim.tenant_id, result, admitted)
    outcome = _succeeded(claim, call, result, started_at, started)
    if key is not None:
        value = {"output": result.output, "usage": result.usage, "request_id": result.request_id}
        outcome.cache = (key, value, call.route.cache_ttl_s)
    return outcome


def _usage_columns(usage: dict[str, float]) -> dict[str, Any]:
    """An attempt's usage, raw and in the columns usage reports sum."""
    return {
        "usage": usage or None,
        "input_tokens": int(usage.get("input_tokens", 0)),
        "output_tokens": int(usage.get("output_tokens", 0)),
        "images": int(usage.get("images", 0)),
        "video_seconds": float(usage.get("video_seconds", 0)),
        "predict_seconds": float(usage.get("predict_seconds", 0)),
    }


def _attempt_row(
    claim: Claim,
    call: Call | None,
    status: str,
    started_at: datetime,
    started: float,
    *,
    result: ProviderResult | None = None,
    error: ProviderError | None = None,
    cost: int = 0,
    http_status: int | None = None,
    request_id: str | None = None,
) -> dict[str, Any]:
    usage = result.usage if result else {}
    return {
        "job_id": claim.job_id,
        "number": claim.attempt,
        "route": call.route.name if call else claim.current_model.partition("/")[0],
        "model": claim.current_model,
        "status": status,
        "error_class": error.error_class if error else None,
        "error_message": error.message if error else None,
        "http_status": http_status or (error.http_status if error else None),
        "provider_request_id": request_id or (error.request_id if error else None),
        **_usage_columns(usage),
        "cost_micros": cost,
        "latency_ms": int((time.monotonic() - started) * 1000),
        "started_at": started_at,
        "finished_at": utcnow(),
    }


def _succeeded(
    claim: Claim,
    call: Call,
    result: ProviderResult,
    started_at: datetime,
    started: float,
    *,
    cached: bool = False,
) -> Outcome:
    cost = 0 if cached else cost_micros(call.spec, result.usage)
    return Outcome(
        attempt=_attempt_row(
            claim,
            call,
            "cached" if cached else "succeeded",
            started_at,
            started,
            result=result,
            cost=cost,
            http_status=result.http_status,
            request_id=result.request_id,
        ),
        job=_success_values(claim, result, cached),
        spent_micros=cost,
        release=True,
    )


def _success_values(claim: Claim, result: ProviderResult, cached: bool) -> dict[str, Any]:
    return {
        "status": JobStatus.SUCCEEDED,
        "output": result.output,
        "usage": result.usage,
        "provider_request_id": result.request_id,
        "served_by": claim.current_model,
        "cached": cached,
        "error": None,
        "progress": 100.0 if claim.provider_job_id else None,
        "next_poll_at": None,
        "finished_at": utcnow(),
    }


def _submitted(
    runtime: Runtime,
    claim: Claim,
    call: Call,
    poll: PollResult,
    started_at: datetime,
    started: float,
) -> Outcome:
    if poll.state != AsyncState.RUNNING:
        submitted = _with_provider_job(claim, poll.provider_job_id)
        outcome = _polled(runtime, submitted, call, poll, started_at)
        assert outcome.attempt is not None
        outcome.attempt = _attempt_row(
            claim,
            call,
            outcome.attempt["status"],
            started_at,
            started,
            result=poll.result,
            error=poll.error,
            cost=outcome.spent_micros,
            http_status=poll.http_status,
            request_id=poll.request_id,
        )
        return outcome
    delay_s = _next_poll_s(runtime, claim, call, poll, started_at)
    return Outcome(
        attempt=_attempt_row(
            claim,
            call,
            "submitted",
            started_at,
            started,
            http_status=poll.http_status,
            request_id=poll.request_id,
        ),
        job={
            "status": JobStatus.WAITING,
            "provider_job_id": poll.provider_job_id,
            "progress": poll.progress,
            "next_poll_at": utcnow() + timedelta(seconds=delay_s),
            "polls": 0,
        },
        message=(POLL_JOB, delay_s),
    )


def _with_provider_job(claim: Claim, provider_job_id: str) -> Claim:
    return replace(claim, provider_job_id=provider_job_id)


def _next_poll_s(
    runtime: Runtime, claim: Claim, call: Call, poll: PollResult, submitted_at: datetime
) -> float:
    state = PollState(
        elapsed_s=(utcnow() - submitted_at).total_seconds(),
        expected_s=runtime.durations.median(claim.current_model) or call.spec.expected_duration_s,
        progress=poll.progress,
        hint_s=poll.poll_after_s,
    )
    return next_poll_in_s(state)


def _polled(
    runtime: Runtime, claim: Claim, call: Call, poll: PollResult, submitted_at: datetime
) -> Outcome:
    """The outcome of a poll: still running, done, failed or canceled at the provider."""
    if poll.state == AsyncState.RUNNING:
        delay_s = _next_poll_s(runtime, claim, call, poll, submitted_at)
        return Outcome(
            attempt=None,
            job={"progress": poll.progress, "next_poll_at": utcnow() + timedelta(seconds=delay_s)},
            message=(POLL_JOB, delay_s),
        )
    if poll.state == AsyncState.SUCCEEDED and poll.result is not None:
        elapsed_s = (utcnow() - submitted_at).total_seconds()
        runtime.durations.record(claim.current_model, elapsed_s)
        cost = cost_micros(call.spec, poll.result.usage)
        return Outcome(
            attempt=_final_attempt("succeeded", result=poll.result, cost=cost),
            job=_success_values(claim, poll.result, cached=False),
            spent_micros=cost,
            release=True,
        )
    error = poll.error or ProviderError(
        ErrorClass.PROVIDER_JOB_FAILED, f"provider job {poll.state}", retryable=False
    )
    return _failed_final(error, _final_attempt("failed", error=error))


def _final_attempt(
    status: str,
    *,
    result: ProviderResult | None = None,
    error: ProviderError | None = None,
    cost: int = 0,
) -> dict[str, Any]:
    """Column values that close the attempt row written when the job was submitted."""
    usage = result.usage if result else {}
    return {
        "status": status,
        "error_class": error.error_class if error else None,
        "error_message": error.message if error else None,
        **_usage_columns(usage),
        "cost_micros": cost,
        "finished_at": utcnow(),
        "close_submitted": True,
    }


def _failed(
    runtime: Runtime,
    claim: Claim,
    call: Call | None,
    error: ProviderError,
    started_at: datetime | None,
    started: float | None,
    *,
    final: bool = False,
    poll: bool = False,
    deadline: datetime | None = None,
) -> Outcome:
    """Retry on the same route, fall back to the next route, or fail the job."""
    if poll:
        attempt = _final_attempt("failed", error=error)
    else:
        assert started_at is not None and started is not None
        attempt = _attempt_row(claim, call, "failed", started_at, started, error=error)
    doc = {"type": str(error.error_class), "message": error.message}
    if not final and call is not None:
        if error.retryable and claim.route_attempt < call.route.max_attempts:
            delay_s = retry_delay_s(claim.route_attempt, error.retry_after_s)
            if deadline is not None and utcnow() + timedelta(seconds=delay_s) >= deadline:
                late = ProviderError(
                    ErrorClass.DEADLINE,
                    f"the job's deadline comes before its next retry (last: {error.message})",
                    retryable=False,
                )
                return _failed_final(late, attempt)
            return Outcome(
                attempt, {"status": JobStatus.QUEUED, "error": doc}, message=(RUN_JOB, delay_s)
            )
        fallback = (
            _next_fallback(runtime, claim.model, claim.current_model)
            if _may_fall_back(error)
            else None
        )
        if fallback is not None:
            job = {
                "status": JobStatus.QUEUED,
                "error": doc,
                "current_model": fallback,
                "route": fallback.partition("/")[0],
                "route_attempts": 0,
                "provider_job_id": None,
            }
            return Outcome(attempt, job, message=(RUN_JOB, 0.0))
    return _failed_final(error, attempt)


def _failed_final(error: ProviderError, attempt: dict[str, Any]) -> Outcome:
    """End the job: ``failed`` for the request's own fault, else dead-lettered."""
    expected = error.error_class in EXPECTED_FAILURES
    job = {
        "status": JobStatus.FAILED if expected else JobStatus.DEAD_LETTERED,
        "error": {"type": str(error.error_class), "message": error.message},
        "next_poll_at": None,
        "finished_at": utcnow(),
    }
    return Outcome(attempt, job, release=True, dead_letter=None if expected else error)


def _may_fall_back(error: ProviderError) -> bool:
    return error.retryable or error.error_class in ROUTE_FAULTS


def _next_fallback(runtime: Runtime, model_ref: str, current_model: str) -> str | None:
    chain = _chain(runtime, model_ref)
    if current_model not in chain:
        return None
    rest = chain[chain.index(current_model) + 1 :]
    return rest[0] if rest else None


def _stop_orphan(
    session: Session, job_id: str, provider_job_id: str | None
) -> OutboxMessage | None:
    """A job canceled while its async submit was in flight keeps the provider job's id and
    gets the message that cancels it there, so it does not run on unpaid-for."""
    if not provider_job_id:
        return None
    adopted = session.execute(
        update(Job)
        .where(
            Job.id == job_id,
            Job.status == JobStatus.CANCELED,
            Job.provider_job_id.is_(None),
        )
        .values(provider_job_id=provider_job_id)
    ).rowcount
    if not adopted:
        return None
    row = outbox.stage(session, JOBS_QUEUE, CANCEL_JOB, {"job_id": job_id})
    session.flush()
    return row


def _announces(outcome: Outcome, running: JobStatus) -> bool:
    """A job that ended, or whose async provider job just started, has an event to send."""
    status = outcome.job.get("status")
    if status == JobStatus.WAITING:
        return running == JobStatus.RUNNING
    return status in TERMINAL_STATUSES


def _commit(runtime: Runtime, claim: Claim, outcome: Outcome, *, running: JobStatus) -> None:
    """Write the attempt and move the job on in one transaction, if the job is still ours."""
    now = utcnow()
    message_rows: list[OutboxMessage] = []
    ended: Job | None = None
    if outcome.attempt:
        route, _, model = claim.current_model.partition("/")
        metrics.attempt_made(route, model, outcome.attempt)
        if outcome.attempt.get("provider_request_id"):
            bind_job(provider_request_id=outcome.attempt["provider_request_id"])
    with runtime.sessions.begin() as session:
        attempt = dict(outcome.attempt or {})
        if attempt.pop("close_submitted", False):
            session.execute(
                update(JobAttempt)
                .where(JobAttempt.job_id == claim.job_id, JobAttempt.number == claim.attempt)
                .values(**attempt)
            )
        elif attempt:
            session.add(JobAttempt(**attempt))
        still_ours = and_(
            Job.id == claim.job_id, Job.status == running, Job.attempts == claim.attempt
        )
        job_values = dict(outcome.job, lease_expires_at=None, updated_at=now)
        if outcome.release:
            job_values["reserved_micros"] = 0
        changed = session.execute(update(Job).where(still_ours).values(**job_values)).rowcount
        if outcome.spent_micros:
            session.execute(
                update(Job)
                .where(Job.id == claim.job_id)
                .values(cost_micros=Job.cost_micros + outcome.spent_micros)
            )
        budgets.settle(
            session,
            claim.tenant_id,
            claim.budget_period_start,
            spent_micros=outcome.spent_micros,
            released_micros=claim.reserved_micros if changed and outcome.release else 0,
        )
        if not changed:
            logger.info("job %s was canceled or taken over; kept the attempt", claim.job_id)
            stop = _stop_orphan(session, claim.job_id, outcome.job.get("provider_job_id"))
            message_rows = [stop] if stop is not None else []
        else:
            if outcome.dead_letter is not None:
                error = outcome.dead_letter
                deadletters.record_job(session, claim.job_id, error.error_class, error.message)
            elif outcome.message is not None:
                actor, delay_s = outcome.message
                message_rows.append(
                    outbox.stage(
                        session, JOBS_QUEUE, actor, {"job_id": claim.job_id}, delay_s=delay_s
                    )
                )
                session.flush()
            if _announces(outcome, running):
                job = session.get_one(Job, claim.job_id, populate_existing=True)
                message_rows.extend(webhook_events.job_event(session, runtime.settings, job))
                ended = job if job.status in TERMINAL_STATUSES else None
    if ended is not None:
        metrics.job_ended(ended)
    if message_rows:
        outbox.send(runtime.sessions, runtime.broker, message_rows)
    if changed and outcome.cache is not None:
        key, value, ttl_s = outcome.cache
        runtime.cache.put(key, value, ttl_s)
