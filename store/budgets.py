"""Tenant budgets that hold under concurrency.

Every job reserves its estimated maximum cost when it is enqueued, with one conditional
UPDATE (``spent + reserved + amount <= limit``) in the job's own transaction, so
parallel enqueues cannot together pass the limit: the database row lock serialises
them and each re-checks the condition. Workers then add what each attempt really cost
to ``spent`` and release the reservation when the job ends.
"""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from schema.errors import LimitExceededError
from schema.tables import BudgetPeriod, Tenant, utcnow
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
    start = period_start(tenant.budget_period, now or utcnow())
    row = session.get(BudgetPeriod, (tenant.id, start))
    return BudgetState(
        limit_micros=tenant.budget_micros,
        spent_micros=row.spent_micros if row else 0,
        reserved_micros=row.reserved_micros if row else 0,
        period=tenant.budget_period,
        period_start=start,
        resets_at=period_end(tenant.budget_period, start),
    )


def reserve(
    session: Session, tenant_id: str, amount_micros: int, *, enforce_limit: bool = True
) -> datetime:
    """Reserve ``amount_micros`` in the current period; return the period's start.

    Raises ``BudgetExceededError`` if it does not fit; the caller's transaction then
    rolls back and nothing is stored. An operator's requeue reserves without the limit.
    """
    tenant = session.get_one(Tenant, tenant_id)
    start = period_start(tenant.budget_period, utcnow())
    _ensure_row(session, tenant_id, start)
    query = update(BudgetPeriod).where(
        BudgetPeriod.tenant_id == tenant_id, BudgetPeriod.period_start == start
    )
    if enforce_limit and tenant.budget_micros is not None:
        query = query.where(
            BudgetPeriod.spent_micros + BudgetPeriod.reserved_micros + amount_micros
            <= tenant.budget_micros
        )
    changed = session.execute(
        query.values(reserved_micros=BudgetPeriod.reserved_micros + amount_micros)
    ).rowcount
    if not changed:
        raise BudgetExceededError(state(session, tenant), amount_micros)
    return start


def settle(
    session: Session,
    tenant_id: str,
    start: datetime | None,
    *,
    spent_micros: int = 0,
    released_micros: int = 0,
) -> None:
    """Add real spend and give back a reservation, in the caller's transaction."""
    if start is None or not (spent_micros or released_micros):
        return
    session.execute(
        update(BudgetPeriod)
        .where(BudgetPeriod.tenant_id == tenant_id, BudgetPeriod.period_start == start)
        .values(
            spent_micros=BudgetPeriod.spent_micros + spent_micros,
            reserved_micros=BudgetPeriod.reserved_micros - released_micros,
        )
    )


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
