"""The moves made on a job from outside its attempt: the tenant's ``cancel``, the deadline
sweep's ``expire`` and the operator's ``restart`` of a dead-lettered job.

Each is one conditional UPDATE in the caller's transaction, like ``store.lifecycle``'s
moves (whose table lists these too), so it wins or loses cleanly against the job's worker;
a move that ends a job gives back its reservation and records its webhook event with it.
"""

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from schema.errors import ConflictError
from schema.jobs import TERMINAL_STATUSES
from schema.names import CANCEL_JOB, JOBS_QUEUE, RUN_JOB
from schema.pricing import max_cost_micros
from schema.routes import Routes, UnknownModelError
from schema.settings import Settings
from schema.tables import Job, OutboxMessage, utcnow
from schema.transitions import CANCELED, DEAD_LETTERED, FAILED, QUEUED, check_move
from store import attempts, budgets, lifecycle, outbox
from store.moves import JOBS, ROW_COLUMNS, JobRow, Moved


class JobNotCancelableError(ConflictError):
    """The job already reached a terminal state."""


def cancel(session: Session, settings: Settings, job_id: str) -> Moved:
    """Cancel an unfinished job and give back its reservation; for a job waiting on its
    provider, also stage the message that cancels it there.

    A call in flight is put on the books at its estimate; its late result is discarded
    by ``finish``, which replaces the estimate with what the call really cost.
    """
    now = utcnow()
    canceled = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.status.not_in(TERMINAL_STATUSES))
        .values(
            status=CANCELED,
            finished_at=now,
            lease_expires_at=None,
            next_poll_at=None,
            updated_at=now,
        )
        .returning(Job.tenant_id, Job.reserved_micros, Job.budget_period_start, Job.provider_job_id)
    ).one_or_none()
    if canceled is None:
        status = session.scalar(select(Job.status).where(Job.id == job_id))
        raise JobNotCancelableError(f"job {job_id} is already {status}")
    tenant_id, reserved, period_start, provider_job_id = canceled
    attempts.close_canceled(session, job_id, tenant_id, period_start, reserved)
    moved = _release(session, settings, job_id, tenant_id, period_start, reserved)
    if provider_job_id:
        moved.messages.append(outbox.stage(session, JOBS_QUEUE, CANCEL_JOB, {"job_id": job_id}))
    return moved


def expire(session: Session, settings: Settings, job_ids: Sequence[str]) -> Moved:
    """Fail the queued jobs among ``job_ids`` whose deadline passed; a worker claiming one
    at the same moment wins or loses cleanly."""
    now = utcnow()
    moved = Moved()
    for job_id in job_ids:
        failed = session.execute(
            update(Job)
            .where(Job.id == job_id, Job.status == QUEUED, Job.deadline_at < now)
            .values(
                status=FAILED,
                error={"type": "deadline_exceeded", "message": "the job's deadline passed"},
                finished_at=now,
                updated_at=now,
            )
            .returning(Job.tenant_id, Job.budget_period_start, Job.reserved_micros)
        ).one_or_none()
        if failed is not None:
            tenant_id, period_start, reserved = failed
            moved.add(_release(session, settings, job_id, tenant_id, period_start, reserved))
    return moved


def _release(
    session: Session,
    settings: Settings,
    job_id: str,
    tenant_id: str,
    period_start: datetime | None,
    reserved: int,
) -> Moved:
    """A job that just ended outside ``finish``: give back its reservation and announce it."""
    row = session.execute(
        update(JOBS).where(JOBS.c.id == job_id).values(reserved_micros=0).returning(*ROW_COLUMNS)
    ).one()
    budgets.settle(session, tenant_id, period_start, released_micros=reserved)
    return lifecycle.announce(session, settings, JobRow(*row))


def restart(session: Session, routes: Routes, job_id: str | None) -> OutboxMessage | str:
    """Start a dead-lettered job over from the model it asked for, with a fresh attempt
    budget; a reason instead if it cannot be. Its maximum cost is reserved again without
    the budget check (an operator decided), and its deadline stays the customer's."""
    job = session.get(Job, job_id) if job_id else None
    if job is None:
        return "its job no longer exists"
    try:
        route, model = routes.resolve(job.model)
    except UnknownModelError as exc:
        return f"its model cannot run: {exc}"
    check_move(DEAD_LETTERED, QUEUED)
    reserved = max_cost_micros(route.protocol, route.models[model], job.input)
    restarted = session.execute(
        update(Job)
        .where(Job.id == job.id, Job.status == DEAD_LETTERED)
        .values(
            status=QUEUED,
            current_model=job.model,
            route=route.name,
            route_attempts=0,
            error=None,
            provider_job_id=None,
            progress=None,
            next_poll_at=None,
            lease_expires_at=None,
            finished_at=None,
            reserved_micros=reserved,
            lost_workers=0,
            updated_at=utcnow(),
        )
    ).rowcount
    if not restarted:
        session.refresh(job)
        return f"its job is {job.status}, not dead-lettered"
    job.budget_period_start = budgets.reserve(session, job.tenant_id, reserved, enforce_limit=False)
    return outbox.stage(session, JOBS_QUEUE, RUN_JOB, {"job_id": job.id})
