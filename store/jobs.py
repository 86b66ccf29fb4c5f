"""Reading and canceling a tenant's own jobs."""

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from schema.errors import ConflictError
from schema.jobs import TERMINAL_STATUSES, JobError, JobStatus, JobView
from schema.names import CANCEL_JOB, JOBS_QUEUE
from schema.pricing import usd
from schema.tables import Job, OutboxMessage, utcnow
from store import budgets, outbox
from store.cursors import after, encode_cursor


class JobNotCancelableError(ConflictError):
    """The job already reached a terminal state."""


def view(job: Job) -> JobView:
    return JobView(
        id=job.id,
        status=JobStatus(job.status),
        kind=job.kind,
        model=job.model,
        route=job.route,
        input=job.input,
        metadata=job.meta,
        webhook_url=job.webhook_url,
        webhook_events=job.webhook_events,
        output=job.output,
        usage=job.usage,
        cost_usd=usd(job.cost_micros),
        cached=job.cached,
        served_by=job.served_by,
        progress=job.progress,
        deadline_at=job.deadline_at,
        error=JobError(**job.error) if job.error else None,
        attempts=job.attempts,
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
    )


def get(session: Session, tenant_id: str, job_id: str) -> Job | None:
    """The job if it belongs to the tenant; another tenant's job is as absent as a missing one."""
    return session.scalar(select(Job).where(Job.id == job_id, Job.tenant_id == tenant_id))


def page(
    session: Session,
    tenant_id: str,
    *,
    status: JobStatus | None,
    limit: int,
    cursor: str | None,
) -> tuple[list[Job], str | None]:
    """Newest first, keyset-paginated; return the jobs and the cursor of the next page."""
    query = select(Job).where(Job.tenant_id == tenant_id)
    if status is not None:
        query = query.where(Job.status == status)
    if cursor:
        query = query.where(after(cursor, Job.created_at, Job.id))
    jobs = list(
        session.scalars(query.order_by(Job.created_at.desc(), Job.id.desc()).limit(limit + 1))
    )
    if len(jobs) > limit:
        return jobs[:limit], encode_cursor(jobs[limit - 1].created_at, jobs[limit - 1].id)
    return jobs, None


def cancel(
    session: Session, tenant_id: str, job_id: str
) -> tuple[Job, OutboxMessage | None] | None:
    """Cancel a job that has not finished and give back its budget reservation; for a job
    waiting on its provider, also stage the message that cancels it there.

    One conditional UPDATE decides, so a worker finishing the job at the same moment
    either wins (and the cancel is a 409) or loses; the reservation is given back once.
    A running call's late result is then discarded; what it cost is still counted.
    """
    job = get(session, tenant_id, job_id)
    if job is None:
        return None
    now = utcnow()
    canceled = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.status.not_in(TERMINAL_STATUSES))
        .values(
            status=JobStatus.CANCELED,
            finished_at=now,
            lease_expires_at=None,
            next_poll_at=None,
            updated_at=now,
        )
        .returning(Job.reserved_micros, Job.budget_period_start, Job.provider_job_id)
    ).one_or_none()
    if canceled is None:
        session.refresh(job)
        raise JobNotCancelableError(f"job {job_id} is already {job.status}")
    reserved, period_start, provider_job_id = canceled
    session.execute(update(Job).where(Job.id == job_id).values(reserved_micros=0))
    budgets.settle(session, tenant_id, period_start, released_micros=reserved)
    stop = None
    if provider_job_id:
        stop = outbox.stage(session, JOBS_QUEUE, CANCEL_JOB, {"job_id": job_id})
    session.flush()
    session.refresh(job)
    return job, stop
