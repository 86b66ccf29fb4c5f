"""Sweeps that keep every job moving when a message was lost: a worker killed mid-call
leaves its job ``running`` under a lease that lapses; the sweep sends the job's message
again, and the claim's lease check lets exactly one worker take it over."""

from datetime import timedelta

import dramatiq
from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session, sessionmaker

from producers import budgets, outbox
from schema.jobs import JobStatus
from schema.names import JOBS_QUEUE, POLL_JOB, RUN_JOB
from schema.tables import Job, utcnow


def resend_stalled(
    sessions: sessionmaker[Session],
    broker: dramatiq.Broker,
    *,
    grace_s: float = 5.0,
    batch_size: int = 500,
) -> int:
    """Re-send run_job for lapsed leases and poll_job for overdue polls; return how many."""
    cutoff = utcnow() - timedelta(seconds=grace_s)
    lapsed = and_(Job.status == JobStatus.RUNNING, Job.lease_expires_at < cutoff)
    overdue = and_(
        Job.status == JobStatus.WAITING,
        Job.next_poll_at < cutoff,
        or_(Job.lease_expires_at.is_(None), Job.lease_expires_at < cutoff),
    )
    with sessions.begin() as session:
        stalled = session.execute(
            select(Job.id, Job.status).where(or_(lapsed, overdue)).limit(batch_size)
        ).all()
        rows = [
            outbox.stage(
                session,
                JOBS_QUEUE,
                RUN_JOB if status == JobStatus.RUNNING else POLL_JOB,
                {"job_id": job_id},
            )
            for job_id, status in stalled
        ]
        session.flush()
    outbox.send(sessions, broker, rows)
    return len(rows)


def expire_overdue(sessions: sessionmaker[Session], *, batch_size: int = 500) -> int:
    """Fail queued jobs whose deadline passed (their message may be long lost) and give
    back their budget reservation; return how many."""
    now = utcnow()
    with sessions.begin() as session:
        jobs = session.scalars(
            select(Job)
            .where(Job.status == JobStatus.QUEUED, Job.deadline_at < now)
            .limit(batch_size)
            .with_for_update(skip_locked=True)
        ).all()
        for job in jobs:
            budgets.settle(
                session, job.tenant_id, job.budget_period_start, released_micros=job.reserved_micros
            )
            job.status = JobStatus.FAILED
            job.error = {"type": "deadline_exceeded", "message": "the job's deadline passed"}
            job.reserved_micros = 0
            job.finished_at = now
            job.updated_at = now
    return len(jobs)
