"""Running one job: claim it, call the provider, record the attempt and the outcome.

Execution is at-least-once, the outcome exactly-once: a job is claimed with a
conditional UPDATE (queued, or running with an expired lease), and every outcome is
written only while the claim is still ours (same status and attempt number). A
re-delivered message for a finished job therefore changes nothing.
"""

import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, or_, update
from sqlalchemy.orm import Session

from producers import outbox
from schema.jobs import JobStatus
from schema.names import JOBS_QUEUE, RUN_JOB
from schema.routes import Route, UnknownModelError
from schema.tables import Job, JobAttempt, OutboxMessage, utcnow
from workers.backoff import retry_delay_s
from workers.providers import ErrorClass, ProviderError, ProviderResult
from workers.runtime import Runtime

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Claim:
    job_id: str
    attempt: int
    model: str
    input: dict[str, Any]


def run_job(runtime: Runtime, job_id: str) -> None:
    """Execute ``job_id`` once if it is ours to run; otherwise leave it be."""
    with runtime.sessions.begin() as session:
        job = session.get(Job, job_id)
        if job is None:
            logger.warning("run_job: no job %s", job_id)
            return
        try:
            route, model = runtime.routes.resolve(job.model)
        except UnknownModelError as exc:
            route, model = None, str(exc)
        lease_s = runtime.lease_s(route) if route else runtime.settings.job_lease_margin_s
        claim = _claim(session, job_id, lease_s)
        recheck = None if claim else _recheck_later(session, job)
    if recheck is not None:
        outbox.send(runtime.sessions, runtime.broker, [recheck])
    if claim is None:
        return

    started_at, started = utcnow(), time.monotonic()
    try:
        result = _call(runtime, claim, route, model)
    except ProviderError as error:
        _finish(runtime, claim, job.route, started, started_at, error=error, route=route)
    except Exception as exc:
        logger.exception("run_job: %s broke in the adapter", job_id)
        error = ProviderError(ErrorClass.INTERNAL, f"{type(exc).__name__}: {exc}", retryable=False)
        _finish(runtime, claim, job.route, started, started_at, error=error)
    else:
        _finish(runtime, claim, job.route, started, started_at, result=result)


def _call(runtime: Runtime, claim: Claim, route: Route | None, model: str) -> ProviderResult:
    if route is None:
        raise ProviderError(ErrorClass.CONFIGURATION, model, retryable=False)
    if claim.attempt > route.max_attempts:
        raise ProviderError(
            ErrorClass.WORKER_LOST,
            f"attempts exhausted: the worker holding attempt {claim.attempt - 1} was lost",
            retryable=False,
        )
    return runtime.adapter(route).run(model, claim.input)


def _claim(session: Session, job_id: str, lease_s: float) -> Claim | None:
    now = utcnow()
    claimable = or_(
        Job.status == JobStatus.QUEUED,
        and_(Job.status == JobStatus.RUNNING, Job.lease_expires_at < now),
    )
    claimed = session.execute(
        update(Job)
        .where(Job.id == job_id, claimable)
        .values(
            status=JobStatus.RUNNING,
            attempts=Job.attempts + 1,
            lease_expires_at=now + timedelta(seconds=lease_s),
            started_at=func.coalesce(Job.started_at, now),
            updated_at=now,
        )
        .returning(Job.attempts, Job.model, Job.input)
    ).one_or_none()
    if claimed is None:
        return None
    return Claim(job_id, claimed.attempts, claimed.model, claimed.input)


def _recheck_later(session: Session, job: Job) -> OutboxMessage | None:
    """A job running under another worker's lease gets a message for when the lease ends,
    so a worker that died mid-call does not strand it."""
    session.refresh(job)
    if job.status != JobStatus.RUNNING or job.lease_expires_at is None:
        return None
    delay_s = (job.lease_expires_at - utcnow()).total_seconds() + 1
    row = outbox.stage(session, JOBS_QUEUE, RUN_JOB, {"job_id": job.id}, delay_s=delay_s)
    session.flush()
    return row


def _finish(
    runtime: Runtime,
    claim: Claim,
    route_name: str,
    started: float,
    started_at: datetime,
    *,
    result: ProviderResult | None = None,
    error: ProviderError | None = None,
    route: Route | None = None,
) -> None:
    """Record the attempt and move the job on, in one transaction."""
    now = utcnow()
    values, retry_in_s = _outcome(claim, route, result, error, now)
    retry_row = None
    with runtime.sessions.begin() as session:
        session.add(
            JobAttempt(
                job_id=claim.job_id,
                number=claim.attempt,
                route=route_name,
                status="failed" if error else "succeeded",
                error_class=error.error_class if error else None,
                error_message=error.message if error else None,
                http_status=error.http_status if error else result and result.http_status,
                provider_request_id=error.request_id if error else result and result.request_id,
                usage=result.usage if result else None,
                latency_ms=int((time.monotonic() - started) * 1000),
                started_at=started_at,
                finished_at=now,
            )
        )
        still_ours = and_(
            Job.id == claim.job_id,
            Job.status == JobStatus.RUNNING,
            Job.attempts == claim.attempt,
        )
        changed = session.execute(
            update(Job).where(still_ours).values(lease_expires_at=None, updated_at=now, **values)
        ).rowcount
        if not changed:
            logger.info("run_job: %s was canceled or taken over; kept the attempt", claim.job_id)
        elif retry_in_s is not None:
            retry_row = outbox.stage(
                session, JOBS_QUEUE, RUN_JOB, {"job_id": claim.job_id}, delay_s=retry_in_s
            )
            session.flush()
    if retry_row is not None:
        outbox.send(runtime.sessions, runtime.broker, [retry_row])


def _outcome(
    claim: Claim,
    route: Route | None,
    result: ProviderResult | None,
    error: ProviderError | None,
    now: datetime,
) -> tuple[dict[str, Any], float | None]:
    """The job's new column values, and the delay before a retry if there is one."""
    if result is not None:
        return {
            "status": JobStatus.SUCCEEDED,
            "output": result.output,
            "usage": result.usage,
            "provider_request_id": result.request_id,
            "error": None,
            "finished_at": now,
        }, None
    assert error is not None
    doc = {"type": str(error.error_class), "message": error.message}
    if error.retryable and route is not None and claim.attempt < route.max_attempts:
        return {"status": JobStatus.QUEUED, "error": doc}, retry_delay_s(
            claim.attempt, error.retry_after_s
        )
    return {"status": JobStatus.FAILED, "error": doc, "finished_at": now}, None
