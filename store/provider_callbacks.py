"""A verified provider callback wakes its waiting job: it stages a ``poll_job`` now, and the
worker's poll, the one path that finishes a job, reads the result at once. The callback
itself writes nothing else, so a forged or mistaken one could at worst cause one extra poll.
"""

from enum import StrEnum

from sqlalchemy.orm import Session

from schema.jobs import JobStatus
from schema.names import JOBS_QUEUE, POLL_JOB
from schema.tables import Job, OutboxMessage
from store import outbox


class Wake(StrEnum):
    """What a callback found."""

    POLL = "poll"
    """The job waits on this provider job: a poll is staged."""
    UNKNOWN_JOB = "unknown_job"
    """No such job on this route."""
    NOT_WAITING_YET = "not_waiting_yet"
    """The job is queued or running: its provider job is not recorded yet, or it is retrying."""
    FINISHED = "finished"
    """The job already ended."""
    MISMATCH = "mismatch"
    """The job waits on another provider job (an earlier attempt's, say)."""


def wake(
    session: Session, route: str, job_id: str, provider_job_id: str
) -> tuple[Wake, OutboxMessage | None]:
    """Stage a poll of job_id if it waits on ``provider_job_id`` at ``route``; the staged
    row is sent by the caller after commit."""
    job = session.get(Job, job_id)
    if job is None or job.current_model.partition("/")[0] != route:
        return Wake.UNKNOWN_JOB, None
    if job.status in (JobStatus.QUEUED, JobStatus.RUNNING):
        return Wake.NOT_WAITING_YET, None
    if job.status != JobStatus.WAITING:
        return Wake.FINISHED, None
    if not provider_job_id or not _same(job.provider_job_id, provider_job_id):
        return Wake.MISMATCH, None
    row = outbox.stage(session, JOBS_QUEUE, POLL_JOB, {"job_id": job_id})
    return Wake.POLL, row


def _same(recorded: str | None, called_back: str) -> bool:
    """A callback names the provider's own id, which ends the id genq recorded (fal's is
    ``{app}/requests/{request id}``; Replicate's is the prediction id itself)."""
    return recorded is not None and (
        recorded == called_back or recorded.endswith(f"/requests/{called_back}")
    )
