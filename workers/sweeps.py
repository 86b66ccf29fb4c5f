"""Sweeps that keep every job moving when a message was lost: a worker killed mid-call
leaves its job ``running`` under a lease that lapses; a broker that lost its messages
leaves jobs ``queued`` or ``waiting``. The sweep sends the job's message again, and the
claim's lease check lets exactly one worker take it over.

Re-sent messages are spread at random over a few seconds: jobs whose worker died together
would otherwise land together on the next worker to fetch, and be lost together again.
"""

import random
from collections.abc import Sequence
from datetime import timedelta

import dramatiq
from sqlalchemy import Row, and_, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from schema.jobs import JobStatus
from schema.names import JOBS_QUEUE, POLL_JOB, RUN_JOB
from schema.settings import Settings
from schema.tables import Job, OutboxMessage, utcnow
from store import job_interventions, outbox

# Longer than any wait a queued job sits out legitimately (a retry backoff, capped at
# 5 minutes, or a deferral for capacity), so only a job whose message is gone qualifies.
QUEUED_RESEND_AFTER_S = 900.0
# A lapsed job is re-sent at most this often: a re-sent message that admission defers
# lives on, so re-sending on every sweep would pile messages up for the same job.
LAPSED_RESEND_EVERY_S = 60.0


def resend_stalled(
    sessions: sessionmaker[Session],
    broker: dramatiq.Broker,
    *,
    grace_s: float = 5.0,
    queued_after_s: float = QUEUED_RESEND_AFTER_S,
    spread_s: float = 5.0,
    batch_size: int = 500,
) -> int:
    """Re-send run_job for lapsed leases and for queued jobs untouched for
    ``queued_after_s`` (their message was lost), and poll_job for overdue polls; return
    how many, each after a random delay of up to ``spread_s``. A duplicate is harmless: the
    claim lets one worker run the job."""
    now = utcnow()
    cutoff = now - timedelta(seconds=grace_s)
    forgotten = and_(
        Job.status == JobStatus.QUEUED, Job.updated_at < now - timedelta(seconds=queued_after_s)
    )
    lapsed = or_(
        and_(
            Job.status == JobStatus.RUNNING,
            Job.lease_expires_at < cutoff,
            # Not re-sent since it lapsed, or not for a while.
            or_(
                Job.updated_at <= Job.lease_expires_at,
                Job.updated_at < now - timedelta(seconds=LAPSED_RESEND_EVERY_S),
            ),
        ),
        forgotten,
    )
    overdue = and_(
        Job.status == JobStatus.WAITING,
        Job.next_poll_at < cutoff,
        or_(Job.lease_expires_at.is_(None), Job.lease_expires_at < cutoff),
    )
    with sessions.begin() as session:
        stalled = session.execute(
            select(Job.id, Job.status)
            .where(or_(lapsed, overdue))
            .order_by(Job.updated_at)
            .limit(batch_size)
        ).all()
        session.execute(
            update(Job).where(Job.id.in_([job_id for job_id, _ in stalled])).values(updated_at=now)
        )
        rows = _stage_spread(session, stalled, spread_s)
    outbox.send(sessions, broker, rows)
    return len(rows)


def resend_open(
    sessions: sessionmaker[Session],
    broker: dramatiq.Broker,
    *,
    spread_s: float = 5.0,
    batch_size: int = 500,
) -> int:
    """Re-send run_job for every queued job and poll_job for every waiting one, spread over
    ``spread_s``; return how many. For a broker that lost its data: it holds no message for
    any of them. A queued job sitting out a retry backoff runs early; admission still holds
    it to its route's limits."""
    sent, after = 0, ""
    while True:
        with sessions.begin() as session:
            open_jobs = session.execute(
                select(Job.id, Job.status)
                .where(Job.status.in_([JobStatus.QUEUED, JobStatus.WAITING]), Job.id > after)
                .order_by(Job.id)
                .limit(batch_size)
            ).all()
            rows = _stage_spread(session, open_jobs, spread_s)
        sent += outbox.send(sessions, broker, rows)
        if len(open_jobs) < batch_size:
            return sent
        after = open_jobs[-1][0]


def _stage_spread(
    session: Session, jobs: Sequence[Row[tuple[str, str]]], spread_s: float
) -> list[OutboxMessage]:
    """Stage each job's next message (poll_job if waiting, else run_job) at a random delay
    of up to ``spread_s``."""
    rows = [
        outbox.stage(
            session,
            JOBS_QUEUE,
            POLL_JOB if status == JobStatus.WAITING else RUN_JOB,
            {"job_id": job_id},
            delay_s=random.uniform(0, spread_s),
        )
        for job_id, status in jobs
    ]
    return rows


def expire_overdue(
    sessions: sessionmaker[Session],
    broker: dramatiq.Broker,
    settings: Settings,
    *,
    batch_size: int = 500,
) -> int:
    """Fail queued jobs whose deadline passed (their message may be long lost), through the
    state machine, which gives back their reservations and sends their events; return how
    many."""
    with sessions.begin() as session:
        overdue = session.scalars(
            select(Job.id).where(Job.status == JobStatus.QUEUED, Job.deadline_at < utcnow())
            .limit(batch_size)
        ).all()  # fmt: skip
        moved = job_interventions.expire(session, settings, overdue)
    moved.publish(sessions, broker)
    return len(moved.ended)
