"""A job's attempt rows: one is written when the job is claimed, before any call may start,
and closed when the attempt ends, so every paid call is on the books.

A row left open by a worker that was lost, or by a job canceled mid-call, is closed by
whoever notices first, with a cost estimated from the request (the job's maximum cost)
and marked ``cost_estimated``; a real outcome that arrives later replaces the estimate.
An outcome never counts twice: a row already closed for real (by another poll of the
same provider job) is left as it is.
"""

from datetime import datetime

from sqlalchemy import and_, bindparam, or_, select, update
from sqlalchemy.orm import Session

from schema.errors import ErrorClass
from schema.tables import utcnow
from store import budgets
from store.job_statements import ATTEMPTS, OPEN_ATTEMPTS, START_ATTEMPT
from store.moves import JOBS, AttemptRecord, Claim, Outcome

# Closes an open attempt: its new values come as parameters by name, beside its key. The
# open statuses are compared one by one: an IN list's parameter is expanded into the SQL
# again at every execution.
CLOSE = update(ATTEMPTS).where(
    ATTEMPTS.c.job_id == bindparam("b_job_id"),
    ATTEMPTS.c.number == bindparam("b_number"),
    or_(*(ATTEMPTS.c.status == status for status in OPEN_ATTEMPTS)),
)
LOST = "the worker was lost mid-attempt; its cost is estimated from the request"
UNCOMMITTED = "the worker could not commit its answer; the next attempt uses the kept answer"


def start(session: Session, held: Claim, now: datetime) -> None:
    """Write the held attempt's row, ``started`` (PostgreSQL writes it with the claim)."""
    session.execute(
        START_ATTEMPT,
        {
            "job_id": held.job_id,
            "number": held.attempt,
            "route": held.current_model.partition("/")[0],
            "model": held.current_model,
            "status": "started",
            "started_at": now,
        },
    )


def close_lost(session: Session, held: Claim, cost_micros: int, *, kept: bool = False) -> None:
    """Close the attempt the previous worker left open, and put its estimated cost on the
    books; an attempt whose answer was kept costs nothing here (the next attempt records
    the answer's real cost)."""
    closed = session.execute(
        update(ATTEMPTS)
        .where(
            ATTEMPTS.c.job_id == held.job_id,
            ATTEMPTS.c.number == held.attempt - 1,
            ATTEMPTS.c.status == "started",
        )
        .values(
            status="lost",
            error_class=ErrorClass.WORKER_LOST,
            error_message=UNCOMMITTED if kept else LOST,
            cost_micros=0 if kept else cost_micros,
            cost_estimated=not kept,
            finished_at=utcnow(),
        )
    ).rowcount
    if closed and cost_micros and not kept:
        _spend(session, held.job_id, held.tenant_id, held.budget_period_start, cost_micros)


def close_canceled(
    session: Session,
    job_id: str,
    tenant_id: str,
    period_start: datetime | None,
    estimate_micros: int,
) -> None:
    """Close the open attempt of a job canceled mid-attempt: a call in flight at the estimate,
    on the job's cost and the budget (its worker, if alive, replaces it with the real
    outcome); a submitted provider job at nothing (it is canceled at the provider)."""
    now = utcnow()
    open_call = and_(ATTEMPTS.c.job_id == job_id, ATTEMPTS.c.status == "started")
    started = session.execute(
        update(ATTEMPTS)
        .where(open_call)
        .values(
            status="canceled",
            cost_micros=estimate_micros,
            cost_estimated=True,
            finished_at=now,
        )
    ).rowcount
    session.execute(
        update(ATTEMPTS)
        .where(ATTEMPTS.c.job_id == job_id, ATTEMPTS.c.status == "submitted")
        .values(status="canceled", finished_at=now)
    )
    if started and estimate_micros:
        _spend(session, job_id, tenant_id, period_start, estimate_micros)


def close(session: Session, held: Claim, attempt: AttemptRecord | None) -> int | None:
    """Close the held attempt's row. Return what the outcome adds to the books beyond its
    own cost: 0 normally; minus the estimate when the row was closed with one (the real
    outcome replaces it); None when the outcome must add nothing, because the row was
    already closed for real, or it only says a provider job was accepted after the row
    was estimated (that provider job is canceled; the estimate stands)."""
    if attempt is None:
        return 0
    this = {"b_job_id": held.job_id, "b_number": held.attempt}
    if session.execute(CLOSE, attempt.values | this).rowcount:
        return 0
    this_attempt = and_(ATTEMPTS.c.job_id == held.job_id, ATTEMPTS.c.number == held.attempt)
    if attempt.values.get("status") == "submitted":
        return None
    estimated = session.scalar(
        select(ATTEMPTS.c.cost_micros).where(this_attempt, ATTEMPTS.c.cost_estimated)
    )
    if estimated is None:
        return None
    session.execute(
        update(ATTEMPTS).where(this_attempt).values(**attempt.values, cost_estimated=False)
    )
    return -estimated


def book(session: Session, held: Claim, outcome: Outcome, *, moved: bool, released: int) -> int:
    """Close the held attempt's row and settle the budget with what the outcome spent and,
    if the job ``moved``, the reservation ``released``. Return what the job's cost needs
    beyond the outcome's own (a correction of an estimate), now on the job's row."""
    correction = close(session, held, outcome.attempt)
    spent = 0 if correction is None else outcome.spent_micros + correction
    if unbooked := spent - (outcome.spent_micros if moved else 0):
        add_cost(session, held.job_id, unbooked)
    budgets.settle(
        session,
        held.tenant_id,
        held.budget_period_start,
        spent_micros=spent,
        released_micros=released if moved else 0,
    )
    return unbooked


def add_cost(session: Session, job_id: str, micros: int) -> None:
    """Put ``micros`` (an estimate, or a correction of one) on the job's cost."""
    session.execute(
        update(JOBS).where(JOBS.c.id == job_id).values(cost_micros=JOBS.c.cost_micros + micros)
    )


def _spend(
    session: Session, job_id: str, tenant_id: str, period_start: datetime | None, micros: int
) -> None:
    add_cost(session, job_id, micros)
    budgets.settle(session, tenant_id, period_start, spent_micros=micros)
