"""Jobs waiting on an async provider job: ``poll_job`` asks the provider how it is doing and
moves the job on; ``cancel_at_provider`` stops a provider job that should not run on."""

import logging
from datetime import datetime

from infra import reconnect
from infra.direct import Executes
from schema.errors import AttemptError, ErrorClass, JobStop
from schema.jobs import JobStatus
from schema.names import POLL_JOB
from schema.tables import Job, utcnow
from store import lifecycle, outbox
from store.moves import Claim
from workers.execution.calls import Call, prepare
from workers.execution.claims import bind, lease_s, recheck_later
from workers.execution.commit import commit
from workers.execution.outcomes import after_failure, attempt_record
from workers.execution.policy import end
from workers.execution.waiting import polled
from workers.providers import AsyncState, PollResult
from workers.runtime import Runtime

logger = logging.getLogger(__name__)


def poll_job(runtime: Runtime, job_id: str) -> None:
    """Ask the provider how a waiting job is doing, and move it on when it is done."""

    def take(db: Executes) -> tuple[bool, Claim | None]:
        job = lifecycle.head(db, job_id)
        if job is None or job.status != JobStatus.WAITING:
            return False, None
        return True, lifecycle.claim_poll(db, job_id, lease_s(runtime, job.current_model))

    waiting, claim = runtime.alone(take)
    if waiting and claim is None:
        recheck = reconnect.transaction(
            runtime.sessions.begin,
            lambda session: recheck_later(session, job_id, POLL_JOB, JobStatus.WAITING),
        )
        if recheck is not None:
            outbox.send(runtime.sessions, runtime.broker, [recheck])
    if claim is None or claim.provider_job_id is None:
        return
    submitted_at = claim.submitted_at or utcnow()
    started_at = claim.provider_started_at
    bind(claim)
    call = None
    try:
        call = prepare(runtime.routes, claim.model, claim.current_model, claim.input)
        adapter = runtime.adapter(call.route)
        poll = adapter.poll(claim.provider_job_id)  # type: ignore[union-attr]
        if poll.state == AsyncState.RUNNING and (late := _overdue(call, claim, submitted_at)):
            adapter.cancel(claim.provider_job_id)  # type: ignore[union-attr]
            raise late
    except AttemptError as error:
        if error.retryable and call is not None and (late := _overdue(call, claim, submitted_at)):
            _cancel_quietly(runtime, call, claim.provider_job_id)
            error = late
        if not error.retryable or call is None:
            attempt = attempt_record("failed", error=error)
            commit(runtime, claim, after_failure(error, end(error), attempt))
            return
        poll = PollResult(claim.provider_job_id, AsyncState.RUNNING, error.request_id, 0)
        logger.info("poll_job: %s: %s; polling again later", job_id, error.error_class)
    commit(runtime, claim, polled(runtime, claim, call, poll, submitted_at, started_at))


def _overdue(call: Call, claim: Claim, submitted_at: datetime) -> JobStop | None:
    """Why a still-running provider job must stop now: the model's hard timeout, or the
    job's own deadline."""
    elapsed_s = (utcnow() - submitted_at).total_seconds()
    limit_s = call.spec.max_duration_s
    if limit_s and elapsed_s > limit_s:
        message = f"the provider job ran {elapsed_s:.0f}s, past the model's {limit_s:.0f}s limit"
        return JobStop(ErrorClass.JOB_TIMEOUT, message)
    if claim.deadline_at is not None and utcnow() >= claim.deadline_at:
        return JobStop(ErrorClass.DEADLINE, "the job's deadline passed")
    return None


def _cancel_quietly(runtime: Runtime, call: Call, provider_job_id: str) -> None:
    """Best effort: a provider job genq gives up on should stop costing money."""
    try:
        runtime.adapter(call.route).cancel(provider_job_id)  # type: ignore[union-attr]
    except AttemptError as error:
        logger.warning("could not cancel %s at the provider: %s", provider_job_id, error.message)


def cancel_at_provider(
    runtime: Runtime, job_id: str, provider_job_id: str | None = None, model: str | None = None
) -> None:
    """Stop a provider job that should not run on: the job's own once it was canceled while
    it waited, or an orphan (``provider_job_id`` on ``model``) a worker started for a job
    that was taken over or canceled meanwhile."""
    with runtime.sessions() as session:
        job = session.get(Job, job_id)
    if job is None:
        return
    if provider_job_id is None:
        if job.status != JobStatus.CANCELED or not job.provider_job_id:
            return
        provider_job_id, model = job.provider_job_id, job.current_model
    try:
        call = prepare(runtime.routes, job.model, model or job.current_model, job.input)
        runtime.adapter(call.route).cancel(provider_job_id)  # type: ignore[union-attr]
    except AttemptError as error:
        if error.retryable:
            raise
        logger.warning("cancel_job: %s: provider refused: %s", job_id, error.message)
