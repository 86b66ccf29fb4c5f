"""The statements of a job's common path, built once: their shape never changes, only their
parameters, so SQLAlchemy compiles each one the first time and serves it from its
compiled cache after that. Core on the tables, not the ORM: nothing on this path needs
the unit of work.

``CLAIM_AND_START`` takes a job and writes its attempt's row in one statement, a
data-modifying CTE (PostgreSQL); SQLite has no such CTEs and runs ``CLAIM``, then
``START_ATTEMPT``. Parameters: ``job_id``, ``now``, ``lease_until`` and, for a claim,
``lost`` (1 when a takeover counts a lost worker, else 0).
"""

from functools import cache
from typing import Any

from sqlalchemy import (
    CTE,
    BigInteger,
    BindParameter,
    Column,
    Insert,
    Integer,
    Select,
    Table,
    and_,
    bindparam,
    case,
    exists,
    func,
    insert,
    literal,
    literal_column,
    or_,
    select,
    update,
)

from schema.jobs import JobStatus
from schema.tables import BudgetEntry, JobAttempt
from store.budgets import PERIODS_TABLE, RESERVE_CHECKED
from store.moves import CLAIM_COLUMNS, ENDED_COLUMNS, HEAD_COLUMNS, JOBS, ROW_COLUMNS, Claim
from store.outbox import OUTBOX

ATTEMPTS = JobAttempt.__table__
LEDGER = BudgetEntry.__table__
ENTRY_COLUMNS = ("tenant_id", "period_start", "spent_micros", "released_micros")
OPEN_ATTEMPTS = ("started", "submitted")

_now = bindparam("now", type_=JOBS.c.updated_at.type)
_lease_until = bindparam("lease_until", type_=JOBS.c.lease_expires_at.type)
_this_job = JOBS.c.id == bindparam("job_id", type_=JOBS.c.id.type)
_taken_over = JOBS.c.status == JobStatus.RUNNING

HEAD = select(*HEAD_COLUMNS).where(_this_job)

INSERT_JOB = insert(JOBS)

CLAIM = (
    update(JOBS)
    .where(
        _this_job,
        or_(JOBS.c.status == JobStatus.QUEUED, and_(_taken_over, JOBS.c.lease_expires_at < _now)),
    )
    .values(
        status=JobStatus.RUNNING,
        attempts=JOBS.c.attempts + 1,
        route_attempts=case((_taken_over, JOBS.c.route_attempts), else_=JOBS.c.route_attempts + 1),
        lost_workers=case(
            (_taken_over, JOBS.c.lost_workers + bindparam("lost", type_=Integer)),
            else_=JOBS.c.lost_workers,
        ),
        started_at=func.coalesce(JOBS.c.started_at, _now),
        lease_expires_at=_lease_until,
        updated_at=_now,
    )
    .returning(*CLAIM_COLUMNS)
)

START_ATTEMPT = insert(ATTEMPTS)


def _scalar_defaults(table: Table) -> dict[str, Any]:
    """A table's Python-side scalar defaults, as literals: a CTE's INSERT gets none of the
    Python-side defaults at execution, so they are written into its statement."""
    return {
        column.name: literal(column.default.arg, column.type)
        for column in table.c
        if column.default is not None and column.default.is_scalar
    }


@cache
def insert_reserved(job_columns: frozenset[str], message_columns: frozenset[str]) -> Select:
    """A new job, its run_job message and its budget reservation as one statement
    (PostgreSQL), which may be committed on its own: the job and its message are written
    only if ``RESERVE_CHECKED`` reserved (the tenant's period as guessed, its limit kept).
    It returns the message's id, and no row when it wrote nothing. Values come as
    ``j_<column>`` for the job's ``job_columns`` and ``o_<column>`` for the message's
    ``message_columns``, beside the reservation's own parameters."""
    reserved = RESERVE_CHECKED.returning(PERIODS_TABLE.c.tenant_id).cte("reserved")
    inserted = _insert_after(reserved, JOBS, "j_", job_columns).cte("inserted")
    staged = _insert_after(inserted, OUTBOX, "o_", message_columns).cte("staged")
    return select(staged.c.id)


def _insert_after(after: CTE, table: Table, prefix: str, columns: frozenset[str]) -> Insert:
    """One row into ``table``, its ``columns`` given as ``<prefix><column>``, written only
    if ``after`` returned a row; it returns the row's id."""
    values = _scalar_defaults(table) | {name: _named(prefix, table.c[name]) for name in columns}
    chosen = select(*values.values()).where(exists().select_from(after))
    return (
        insert(table)
        .from_select(list(values), chosen, include_defaults=False)
        .returning(table.c.id)
    )


_claimed = CLAIM.returning(JOBS.c.id).cte("claimed")
_attempt = {
    "job_id": _claimed.c.id,
    "number": _claimed.c.attempts,
    "route": func.split_part(_claimed.c.current_model, "/", 1),
    "model": _claimed.c.current_model,
    "status": literal("started"),
    "started_at": _now,
    **_scalar_defaults(ATTEMPTS),
}
_started = (
    insert(ATTEMPTS)
    .from_select(list(_attempt), select(*_attempt.values()), include_defaults=False)
    .cte("started")
)
CLAIM_AND_START = select(*(_claimed.c[column.name] for column in CLAIM_COLUMNS)).add_cte(_started)

_lease_free = or_(JOBS.c.lease_expires_at.is_(None), JOBS.c.lease_expires_at < _now)
# Named in full: SQLite's RETURNING names the table's columns bare, and a bare ``id``
# inside the subquery would be the attempt's own.
_submitted_at = (
    select(ATTEMPTS.c.started_at)
    .where(
        ATTEMPTS.c.job_id == literal_column("jobs.id"),
        ATTEMPTS.c.number == literal_column("jobs.attempts"),
    )
    .scalar_subquery()
)
CLAIM_POLL = (
    update(JOBS)
    .where(_this_job, JOBS.c.status == JobStatus.WAITING, _lease_free)
    .values(polls=JOBS.c.polls + 1, lease_expires_at=_lease_until, updated_at=_now)
    .returning(*CLAIM_COLUMNS, _submitted_at, JOBS.c.provider_started_at)
)

# A move's write, if the claim still holds: the outcome's columns come as parameters by
# name, beside ``b_job_id``, ``b_held`` (the status claimed), ``b_attempt`` and
# ``b_spent`` (the cost the outcome adds).
_finish = (
    update(JOBS)
    .where(
        JOBS.c.id == bindparam("b_job_id"),
        JOBS.c.status == bindparam("b_held"),
        JOBS.c.attempts == bindparam("b_attempt"),
    )
    .values(cost_micros=JOBS.c.cost_micros + bindparam("b_spent", type_=BigInteger))
)
FINISH = _finish.returning(*ROW_COLUMNS)


_held_attempt_open = and_(
    ATTEMPTS.c.job_id == bindparam("b_job_id"),
    ATTEMPTS.c.number == bindparam("b_attempt"),
    or_(*(ATTEMPTS.c.status == status for status in OPEN_ATTEMPTS)),
)


def finish_params(held: Claim, spent_micros: int) -> dict[str, Any]:
    """``FINISH``'s own parameters, beside the job's new columns."""
    return {
        "b_job_id": held.job_id,
        "b_held": held.held,
        "b_attempt": held.attempt,
        "b_spent": spent_micros,
    }


def finish_and_close(
    held: Claim,
    columns: dict[str, Any],
    attempt: dict[str, Any],
    spent_micros: int,
    released_micros: int,
    *,
    alone: bool = False,
) -> tuple[Select, dict[str, Any]]:
    """``FINISH`` with the job's new ``columns``, the attempt's close with ``attempt`` and
    the budget's ledger entry, as one statement and its parameters (PostgreSQL): one round
    trip where they took three. ``alone``: the job moves only if its attempt is open too,
    so the statement does all of it or nothing, and may be committed on its own; it
    returns the job's ``ENDED_COLUMNS``, not its whole row."""
    settles = held.budget_period_start is not None and bool(spent_micros or released_micros)
    params = finish_params(held, spent_micros)
    params |= {f"j_{name}": value for name, value in columns.items()}
    params |= {f"a_{name}": value for name, value in attempt.items()}
    if settles:
        entry = (held.tenant_id, held.budget_period_start, spent_micros, released_micros)
        params |= {f"s_{name}": value for name, value in zip(ENTRY_COLUMNS, entry, strict=True)}
    statement = _finish_and_close(frozenset(columns), frozenset(attempt), settles, alone)
    return statement, params


@cache
def _finish_and_close(
    job_columns: frozenset[str], attempt_columns: frozenset[str], settles: bool, alone: bool
) -> Select:
    """The statement of ``finish_and_close``, built once for each set of columns.

    The attempt is closed only if the job moved, and its ``WHERE`` waits on the job's
    update: the job's row is locked first, the order a claim takes them in. The entry is
    written only if both were. The statement returns the job's row (``alone``: its ended
    columns) and whether the attempt was closed; no row when the job did not move. The
    job's and the attempt's columns share names, so their values come as ``j_<column>``
    and ``a_<column>``, beside ``FINISH``'s own and, with ``settles``, the entry's as
    ``s_<column>``.
    """
    returned = ENDED_COLUMNS if alone else ROW_COLUMNS
    finishing = _finish.where(exists().where(_held_attempt_open)) if alone else _finish
    finished = (
        finishing.returning(*returned)
        .values({name: _named("j_", JOBS.c[name]) for name in job_columns})
        .cte("finished")
    )
    closed = (
        update(ATTEMPTS)
        .where(_held_attempt_open, exists().select_from(finished))
        .values({name: _named("a_", ATTEMPTS.c[name]) for name in attempt_columns})
        .returning(ATTEMPTS.c.id)
        .cte("closed")
    )
    statement = select(
        *(finished.c[column.name] for column in returned),
        exists().select_from(closed).label("closed"),
    )
    if settles:
        entry = {name: _named("s_", LEDGER.c[name]) for name in ENTRY_COLUMNS}
        settled = (
            insert(LEDGER)
            .from_select(list(entry), select(*entry.values()).where(exists().select_from(closed)))
            .cte("settled")
        )
        statement = statement.add_cte(settled)
    return statement


def _named(prefix: str, column: Column) -> BindParameter:
    return bindparam(prefix + column.name, type_=column.type)
