"""A job's attempt rows: one is written when the job is claimed, before any call may start,
and closed when the attempt ends, so every paid call is on the books. A worker lost mid-
attempt leaves its row open; whoever takes the job over closes it as ``lost``, with a cost
estimated from the request and counted on the job and the tenant's budget."""

from datetime import datetime

from sqlalchemy import and_, select, update
from sqlalchemy.orm import Session

from schema.errors import ErrorClass
from schema.tables import Job, JobAttempt, utcnow
from store import budgets
from store.moves import AttemptRecord, Claim

OPEN = ("started", "submitted")
LOST_MESSAGE = "the worker was lost mid-attempt; its cost is estimated from the request"


def start(session: Session, held: Claim, now: datetime) -> None:
    """Write the held attempt's row, ``started``."""
    session.add(
        JobAttempt(
            job_id=held.job_id,
            number=held.attempt,
            route=held.current_model.partition("/")[0],
            model=held.current_model,
            status="started",
            started_at=now,
        )
    )


def close_lost(session: Session, held: Claim, cost_micros: int) -> None:
    """Close the attempt a lost worker left open, and put its estimated cost on the books."""
    closed = session.execute(
        update(JobAttempt)
        .where(
            JobAttempt.job_id == held.job_id,
            JobAttempt.number == held.attempt - 1,
            JobAttempt.status == "started",
        )
        .values(
            status="lost",
            error_class=ErrorClass.WORKER_LOST,
            error_message=LOST_MESSAGE,
            cost_micros=cost_micros,
            cost_estimated=True,
            finished_at=utcnow(),
        )
    ).rowcount
    if closed and cost_micros:
        session.execute(
            update(Job)
            .where(Job.id == held.job_id)
            .values(cost_micros=Job.cost_micros + cost_micros)
        )
        budgets.settle(session, held.tenant_id, held.budget_period_start, spent_micros=cost_micros)


def close(session: Session, held: Claim, attempt: AttemptRecord | None) -> int:
    """Close the held attempt's row; return what to take back from the books when a taker
    had already closed it as lost with an estimate (this real outcome replaces it)."""
    if attempt is None:
        return 0
    this_attempt = and_(JobAttempt.job_id == held.job_id, JobAttempt.number == held.attempt)
    still_open = JobAttempt.status.in_(OPEN)
    closed = session.execute(
        update(JobAttempt).where(this_attempt, still_open).values(**attempt.values)
    ).rowcount
    if closed:
        return 0
    estimated = session.scalar(
        select(JobAttempt.cost_micros).where(this_attempt, JobAttempt.cost_estimated)
    )
    session.execute(
        update(JobAttempt).where(this_attempt).values(**attempt.values, cost_estimated=False)
    )
    return -(estimated or 0)
