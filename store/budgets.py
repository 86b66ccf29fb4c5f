"""Tenant budgets that hold under concurrency.

Every job reserves its estimated maximum cost when it is enqueued, with one conditional
UPDATE (``spent + reserved + owed + amount <= limit``) in the job's own transaction (or
its own statement, ``store.job_statements.insert_reserved``), so
parallel enqueues cannot together pass the limit: the database row lock serialises
them and each re-checks the condition. Workers then record what each attempt really
cost and the reservation a job gives back as entries in the budget ledger, never locking
the row (``store/budget_ledger.py``: what is ``owed``, the fold, what a crash can lose).
"""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import BigInteger, Engine, bindparam, exists, insert, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from schema.errors import GenqError, LimitExceededError
from schema.tables import BudgetEntry, BudgetPeriod, Tenant, utcnow
from store import budget_ledger
from store.tenants import find_tenant

PERIODS = ("day", "week", "month")


def period_start(period: str, now: datetime) -> datetime:
    day = datetime(now.year, now.month, now.day, tzinfo=UTC)
    if period == "day":
        return day
    if period == "week":
        return day - timedelta(days=day.weekday())
    return day.replace(day=1)


def period_end(period: str, start: datetime) -> datetime:
    if period == "day":
        return start + timedelta(days=1)
    if period == "week":
        return start + timedelta(days=7)
    return (start + timedelta(days=32)).replace(day=1)


@dataclass(frozen=True)
class BudgetState:
    limit_micros: int | None
    spent_micros: int
    reserved_micros: int
    period: str
    period_start: datetime
    resets_at: datetime


class BudgetExceededError(LimitExceededError):
    """The job's estimated cost does not fit in what is left of the tenant's budget."""

    def __init__(self, state: BudgetState, needed_micros: int) -> None:
        super().__init__("budget exceeded")
        self.state = state
        self.needed_micros = needed_micros


def _ensure_row(session: Session, tenant_id: str, start: datetime) -> None:
    dialect = session.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    session.execute(
        insert(BudgetPeriod)
        .values(tenant_id=tenant_id, period_start=start, reserved_micros=0, spent_micros=0)
        .on_conflict_do_nothing()
    )


def state(session: Session, tenant: Tenant, now: datetime | None = None) -> BudgetState:
    """The tenant's budget in the current period, its pending ledger entries included:
    the row and the entries are read in one statement, so a fold cannot be seen half."""
    start = period_start(tenant.budget_period, now or utcnow())
    spent, released = budget_ledger.pending(tenant.id, start)
    row = session.execute(
        select(BudgetPeriod.spent_micros + spent, BudgetPeriod.reserved_micros - released).where(
            BudgetPeriod.tenant_id == tenant.id, BudgetPeriod.period_start == start
        )
    ).one_or_none()
    return BudgetState(
        limit_micros=tenant.budget_micros,
        spent_micros=row[0] if row else 0,
        reserved_micros=row[1] if row else 0,
        period=tenant.budget_period,
        period_start=start,
        resets_at=period_end(tenant.budget_period, start),
    )


class StalePeriodError(GenqError):
    """The tenant's budget period is no longer the one its jobs were written under: the
    caller's transaction rolls back, and the enqueue runs again with the period read."""


@dataclass(frozen=True)
class Terms:
    """What an enqueue checks against: the tenant's current period and its limit. Terms
    ``guessed`` from a period read earlier carry no limit: the reservation checks the
    period and the limit in its own statement."""

    period_start: datetime
    limit_micros: int | None
    guessed: str | None = None


PERIODS_TABLE, TENANTS = BudgetPeriod.__table__, Tenant.__table__
_tenant = bindparam("b_tenant_id", type_=PERIODS_TABLE.c.tenant_id.type)
_start = bindparam("b_start", type_=PERIODS_TABLE.c.period_start.type)
_amount = bindparam("b_amount", type_=BigInteger)
TERMS = select(TENANTS.c.budget_period, TENANTS.c.budget_micros).where(TENANTS.c.id == _tenant)
RESERVE = (
    update(PERIODS_TABLE)
    .where(PERIODS_TABLE.c.tenant_id == _tenant, PERIODS_TABLE.c.period_start == _start)
    .values(reserved_micros=PERIODS_TABLE.c.reserved_micros + _amount)
)
_with_amount = (
    PERIODS_TABLE.c.spent_micros
    + PERIODS_TABLE.c.reserved_micros
    + budget_ledger.owed(_tenant, _start)
    + _amount
)
RESERVE_WITHIN = RESERVE.where(_with_amount <= bindparam("b_limit", type_=BigInteger))
RESERVE_CHECKED = RESERVE.where(
    exists().where(
        TENANTS.c.id == _tenant,
        TENANTS.c.budget_period == bindparam("b_period", type_=TENANTS.c.budget_period.type),
        or_(TENANTS.c.budget_micros.is_(None), _with_amount <= TENANTS.c.budget_micros),
    )
)
SETTLE = insert(BudgetEntry.__table__)


def budget_terms(session: Session, tenant_id: str) -> Terms:
    period, limit = session.execute(TERMS, {"b_tenant_id": tenant_id}).one()
    return Terms(period_start(period, utcnow()), limit)


def guessed_terms(period: str) -> Terms:
    """Terms from a budget period read earlier, to save reading the tenant's terms on
    every enqueue; ``reserve`` checks them."""
    return Terms(period_start(period, utcnow()), None, guessed=period)


def reserve(
    session: Session,
    tenant_id: str,
    amount_micros: int,
    *,
    enforce_limit: bool = True,
    terms: Terms | None = None,
) -> datetime:
    """Reserve ``amount_micros`` in the current period; return the period's start.

    Raises ``BudgetExceededError`` if it does not fit; the caller's transaction then
    rolls back and nothing is stored. An operator's requeue reserves without the limit.
    ``terms``, when the caller has read them already, saves reading them again; guessed
    terms are checked in the reservation's own statement, and raise
    ``StalePeriodError`` if the tenant's period has moved since.
    """
    terms = terms or budget_terms(session, tenant_id)
    start = terms.period_start
    params = reservation(tenant_id, start, amount_micros)
    if terms.guessed is not None:
        if session.execute(RESERVE_CHECKED, {**params, "b_period": terms.guessed}).rowcount:
            return start
        terms = budget_terms(session, tenant_id)
        if terms.period_start != start:
            raise StalePeriodError(tenant_id)
    within = enforce_limit and terms.limit_micros is not None
    query = RESERVE_WITHIN if within else RESERVE
    if within:
        params["b_limit"] = terms.limit_micros
    # The period's row is made on the first miss. A fold that commits while the UPDATE
    # waits for the row shows in the row but not in the statement's snapshot of the
    # ledger, and its entries count twice: the next try takes a fresh snapshot, so such
    # a race does not refuse a job that fits.
    for tries in range(3):
        if session.execute(query, params).rowcount:
            return start
        if tries == 0:
            _ensure_row(session, tenant_id, start)
    tenant = session.get_one(Tenant, tenant_id)
    raise BudgetExceededError(state(session, tenant), amount_micros)


def reservation(tenant_id: str, start: datetime, amount_micros: int) -> dict[str, Any]:
    """The parameters of a reservation statement (``RESERVE`` and its variants)."""
    return {"b_tenant_id": tenant_id, "b_start": start, "b_amount": amount_micros}


def settle(
    session: Session,
    tenant_id: str,
    start: datetime | None,
    *,
    spent_micros: int = 0,
    released_micros: int = 0,
) -> None:
    """Add real spend and give back a reservation, in the caller's transaction: one entry
    in the budget ledger, which locks nothing another job needs; a fold adds it to the
    period's row."""
    if start is None or not (spent_micros or released_micros):
        return
    entry = {
        "tenant_id": tenant_id,
        "period_start": start,
        "spent_micros": spent_micros,
        "released_micros": released_micros,
    }
    session.execute(SETTLE, entry)


def set_budget(engine: Engine, tenant_ref: str, limit_micros: int | None, period: str) -> Tenant:
    """Set a tenant's budget (None for unlimited), found by id or name."""
    if period not in PERIODS:
        raise ValueError(f"period must be one of {', '.join(PERIODS)}")
    with Session(engine, expire_on_commit=False) as session, session.begin():
        tenant = find_tenant(session, tenant_ref)
        if tenant is None:
            raise LookupError(f"no tenant {tenant_ref!r}")
        tenant.budget_micros = limit_micros
        tenant.budget_period = period
        return tenant
