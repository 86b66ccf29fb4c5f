"""The budget ledger: settling a job's spend without a row all of a tenant's jobs must lock.

A job's move records what it spent and which reservation it gives back as one INSERT into
``budget_ledger`` (``budgets.settle``), in the job's own transaction. The scheduler folds
pending entries into their ``budget_periods`` row every ``budget_fold_interval_s``, in
batches: a batch's entries are deleted (``FOR UPDATE SKIP LOCKED``) and their sums added
to the rows in one transaction.

What a crash can lose: nothing. An entry commits or rolls back with the job's outcome; a
fold that dies mid-way rolls back whole, leaving every entry to the next; and a fold skips
entries another fold holds, so none is counted twice.

Until an entry is folded, reads (``budgets.state``) add it to the row, and the enqueue
check counts what it ``owes``: spend beyond the reservation it gives back (a lost
attempt's estimate, a cost above the reservation, a retry's cost), so the limit holds
before any fold. A give-back is left out: the check only refuses too much until the fold.
"""

from collections import defaultdict
from datetime import datetime
from typing import TypeVar

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    ScalarSelect,
    case,
    cast,
    delete,
    func,
    select,
    update,
)
from sqlalchemy.orm import Session, sessionmaker

from schema.tables import BudgetEntry, BudgetPeriod

BATCH_SIZE = 1000
ENTRIES = BudgetEntry.__table__  # Core: statements built on it need no ORM evaluation

T = TypeVar("T")
Key = T | ColumnElement[T]  # a value, or a bound parameter in a statement built once


def _pending(tenant_id: Key[str], start: Key[datetime], micros: object) -> ScalarSelect[int]:
    return (
        select(cast(func.coalesce(func.sum(micros), 0), BigInteger))  # not PostgreSQL's numeric
        .where(ENTRIES.c.tenant_id == tenant_id, ENTRIES.c.period_start == start)
        .scalar_subquery()
    )


def owed(tenant_id: Key[str], start: Key[datetime]) -> ScalarSelect[int]:
    """What the period's pending entries add beyond what they give back, entry by entry.

    Counting a give-back early could let an enqueue pass the limit when a fold commits
    while that enqueue waits for the row: the row would hold the fold, the statement's
    snapshot the entries too. Positive parts only ever count twice there, refusing too much.
    """
    spent, released = ENTRIES.c.spent_micros, ENTRIES.c.released_micros
    return _pending(tenant_id, start, case((spent > released, spent - released), else_=0))


def pending(tenant_id: str, start: datetime) -> tuple[ScalarSelect[int], ScalarSelect[int]]:
    """The period's pending spend and give-backs, to read beside its row in one statement."""
    return (
        _pending(tenant_id, start, BudgetEntry.spent_micros),
        _pending(tenant_id, start, BudgetEntry.released_micros),
    )


def fold(sessions: sessionmaker[Session], batch_size: int = BATCH_SIZE) -> int:
    """Fold pending entries into their periods' rows, one transaction per batch; return
    how many entries were folded."""
    folded = 0
    while True:
        with sessions.begin() as session:
            count = fold_batch(session, batch_size)
        folded += count
        if count < batch_size:
            return folded


def fold_batch(session: Session, batch_size: int) -> int:
    """Delete up to ``batch_size`` entries no other fold holds and add them to their rows,
    in the caller's transaction, rows in key order so two folds never deadlock."""
    batch = (
        select(BudgetEntry.id)
        .order_by(BudgetEntry.id)
        .limit(batch_size)
        .with_for_update(skip_locked=True)
    )
    taken = session.execute(
        delete(BudgetEntry)
        .where(BudgetEntry.id.in_(batch.scalar_subquery()))
        .returning(
            BudgetEntry.tenant_id,
            BudgetEntry.period_start,
            BudgetEntry.spent_micros,
            BudgetEntry.released_micros,
        )
    ).all()
    sums: defaultdict[tuple[str, datetime], list[int]] = defaultdict(lambda: [0, 0])
    for tenant_id, start, spent, released in taken:
        sums[tenant_id, start][0] += spent
        sums[tenant_id, start][1] += released
    for (tenant_id, start), (spent, released) in sorted(sums.items()):
        session.execute(
            update(BudgetPeriod)
            .where(BudgetPeriod.tenant_id == tenant_id, BudgetPeriod.period_start == start)
            .values(
                spent_micros=BudgetPeriod.spent_micros + spent,
                reserved_micros=BudgetPeriod.reserved_micros - released,
            )
        )
    return len(taken)
