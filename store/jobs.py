"""Reading a tenant's own jobs, and the job view every API and event shows."""

from sqlalchemy import select
from sqlalchemy.orm import Session

from schema.jobs import JobError, JobStatus, JobView
from schema.pricing import usd
from schema.tables import Job
from store.cursors import after, encode_cursor


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
