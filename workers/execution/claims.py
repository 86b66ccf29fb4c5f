"""Taking a job for an attempt or a poll: how long the lease lasts, and what to do about a
job another worker holds."""

from sqlalchemy.orm import Session

from schema.jobs import JobStatus
from schema.names import JOBS_QUEUE
from schema.routes import UnknownModelError
from schema.tables import Job, OutboxMessage, utcnow
from store import outbox
from store.moves import Claim
from workers.context import bind_job
from workers.runtime import Runtime


def lease_s(runtime: Runtime, model_ref: str) -> float:
    """The route's timeout plus a margin; the margin alone for a model no route knows."""
    try:
        route, _ = runtime.routes.resolve(model_ref)
    except UnknownModelError:
        return runtime.settings.job_lease_margin_s
    return runtime.lease_s(route)


def bind(claim: Claim) -> None:
    """Put the claimed job's fields on this thread's log lines and error reports."""
    bind_job(
        tenant_id=claim.tenant_id,
        route=claim.current_model.partition("/")[0],
        model=claim.current_model,
        attempt=claim.attempt,
    )


def recheck_later(
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
    return row
