"""The budget ledger: an entry settles a job's spend without a shared row, reads and the
enqueue check count it at once, and a fold moves it into its row exactly once, even when
the fold fails mid-way, its session dies, or another fold races it."""

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import pytest
from sqlalchemy import Engine, func, select, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from infra.db import make_sessions
from schema.tables import BudgetEntry, BudgetPeriod, Tenant
from store import budget_ledger, budgets
from tests.conftest import new_tenant
from tests.waiting import eventually
from workers.scheduler import build_scheduler

on_postgres = pytest.mark.parametrize("engine", ["postgresql"], indirect=True)

LOCK_WAITS = text(
    "SELECT a.pid, a.wait_event, l.locktype, c.relname, a.query FROM pg_stat_activity a "
    "JOIN pg_locks l ON l.pid = a.pid AND NOT l.granted "
    "LEFT JOIN pg_class c ON c.oid = l.relation "
    "WHERE a.datname = current_database() AND a.wait_event_type = 'Lock' "
    "AND a.pid <> pg_backend_pid()"
)


def lock_waits(engine: Engine) -> list[Any]:
    """Sessions of this test database waiting for a lock: pid, event, lock, table, query."""
    with engine.connect() as connection:
        return list(connection.execute(LOCK_WAITS))


BUDGET_WRITES = ("UPDATE budget_periods", "INSERT INTO budget_ledger", "DELETE FROM budget_ledger")


def on_budget(wait: Any) -> bool:
    """A wait for a budget table, or for a row lock a write to one needs. Not a wait to
    extend a table by a page (``extend``): every INSERT into a table may take that lock,
    whoever's row it writes, for as long as one page takes to add; it is no tenant's row."""
    if wait.locktype == "extend":
        return False
    return wait.relname in ("budget_periods", "budget_ledger") or any(
        write in wait.query for write in BUDGET_WRITES
    )


def budget_waiters(engine: Engine) -> set[int]:
    """The sessions of this test database waiting on the budget."""
    return {wait.pid for wait in lock_waits(engine) if on_budget(wait)}


class Background(threading.Thread):
    """``work`` on a thread of its own; ``outcome`` joins it and returns or raises."""

    def __init__(self, work: Callable[[], Any]) -> None:
        super().__init__(daemon=True)
        self.work, self.result, self.error = work, None, None

    def run(self) -> None:
        try:
            self.result = self.work()
        except Exception as exc:
            self.error = exc

    def outcome(self) -> Any:
        self.join(30)
        assert not self.is_alive()
        if self.error is not None:
            raise self.error
        return self.result


def opened(sessions: sessionmaker[Session], tenant_id: str, reserved: int) -> datetime:
    with sessions.begin() as session:
        return budgets.reserve(session, tenant_id, reserved)


def settle(sessions: sessionmaker[Session], tenant_id: str, start: datetime, **micros: int) -> None:
    with sessions.begin() as session:
        budgets.settle(session, tenant_id, start, **micros)


def row(sessions: sessionmaker[Session], tenant_id: str) -> tuple[int, int]:
    """The tenant's budget row as folded: (spent, reserved)."""
    with sessions() as session:
        found = session.scalars(select(BudgetPeriod).where(BudgetPeriod.tenant_id == tenant_id))
        period = found.one()
        return period.spent_micros, period.reserved_micros


def shown(sessions: sessionmaker[Session], tenant_id: str) -> tuple[int, int]:
    """The tenant's budget as reads show it: (spent, reserved)."""
    with sessions() as session:
        state = budgets.state(session, session.get_one(Tenant, tenant_id))
        return state.spent_micros, state.reserved_micros


def pending(sessions: sessionmaker[Session]) -> int:
    with sessions() as session:
        return session.scalar(select(func.count()).select_from(BudgetEntry)) or 0


def two_tenants(engine: Engine, tenant: Any) -> tuple[str, str]:
    """Two tenants' ids in the order a fold locks their rows."""
    first, second = sorted([tenant.tenant_id, new_tenant(engine, "globex").tenant_id])
    return first, second


@contextmanager
def holding(engine: Engine, tenant_id: str) -> Iterator[None]:
    """Hold the tenant's budget row locked, as a transaction in progress would."""
    with engine.connect() as connection, connection.begin():
        held = select(BudgetPeriod).where(BudgetPeriod.tenant_id == tenant_id)
        connection.execute(held.with_for_update()).one()
        yield


def left_whole_then_folded(
    sessions: sessionmaker[Session], tenant_ids: tuple[str, ...], count: int, folded: Any
) -> None:
    """Every entry still pending and each row as opened (1000 reserved); the next fold then
    adds them all, to ``folded`` in each row."""
    assert pending(sessions) == count
    assert {row(sessions, tenant_id) for tenant_id in tenant_ids} == {(0, 1000)}
    assert budget_ledger.fold(sessions) == count
    assert {row(sessions, tenant_id) for tenant_id in tenant_ids} == {folded}


def test_a_settled_job_is_an_entry_shown_at_once_and_folded_exactly(engine, tenant) -> None:
    sessions = make_sessions(engine)
    start = opened(sessions, tenant.tenant_id, 900)

    settle(sessions, tenant.tenant_id, start, spent_micros=400, released_micros=900)
    settle(sessions, tenant.tenant_id, start, spent_micros=50)  # a lost attempt's estimate

    assert row(sessions, tenant.tenant_id) == (0, 900)
    assert shown(sessions, tenant.tenant_id) == (450, 0)
    assert budget_ledger.fold(sessions) == 2
    assert row(sessions, tenant.tenant_id) == (450, 0) == shown(sessions, tenant.tenant_id)
    assert (pending(sessions), budget_ledger.fold(sessions)) == (0, 0)


def test_an_entry_stands_or_falls_with_its_jobs_transaction(engine, tenant) -> None:
    sessions = make_sessions(engine)
    start = opened(sessions, tenant.tenant_id, 900)

    with pytest.raises(RuntimeError), sessions.begin() as session:
        budgets.settle(session, tenant.tenant_id, start, spent_micros=400, released_micros=900)
        raise RuntimeError("the worker died before its commit")

    assert pending(sessions) == 0
    assert shown(sessions, tenant.tenant_id) == (0, 900)


def test_a_fold_goes_batch_by_batch_until_nothing_is_left(engine, tenant) -> None:
    sessions = make_sessions(engine)
    start = opened(sessions, tenant.tenant_id, 500)
    for _ in range(5):
        settle(sessions, tenant.tenant_id, start, spent_micros=7, released_micros=100)

    assert budget_ledger.fold(sessions, batch_size=2) == 5
    assert (row(sessions, tenant.tenant_id), pending(sessions)) == ((35, 0), 0)


def test_a_fold_that_fails_midway_leaves_every_entry_to_the_next(engine, tenant) -> None:
    sessions = make_sessions(engine)
    first, second = two_tenants(engine, tenant)
    for tenant_id in (first, second):
        start = opened(sessions, tenant_id, 1000)
        settle(sessions, tenant_id, start, spent_micros=10, released_micros=100)
        settle(sessions, tenant_id, start, spent_micros=20, released_micros=100)

    with pytest.raises(RuntimeError), sessions.begin() as session:
        assert budget_ledger.fold_batch(session, 10) == 4
        raise RuntimeError("the scheduler died before its commit")

    left_whole_then_folded(sessions, (first, second), 4, (30, 800))


@on_postgres
def test_a_fold_whose_session_dies_midway_loses_no_entry(engine, tenant) -> None:
    sessions = make_sessions(engine)
    first, second = two_tenants(engine, tenant)
    for tenant_id in (first, second):
        settle(sessions, tenant_id, opened(sessions, tenant_id, 1000), spent_micros=10)

    with holding(engine, second):
        crashed = Background(lambda: budget_ledger.fold(sessions))  # waits for second's row
        crashed.start()
        stuck = eventually(lambda: budget_waiters(engine), bool)
        with engine.connect() as connection:
            for pid in stuck:
                connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        with pytest.raises(OperationalError):
            crashed.outcome()

    left_whole_then_folded(sessions, (first, second), 2, (10, 1000))


@on_postgres
def test_two_folds_racing_fold_each_entry_once(engine, tenant) -> None:
    sessions = make_sessions(engine)
    first, second = two_tenants(engine, tenant)
    for tenant_id in (first, second):  # first's five entries come first in the ledger
        start = opened(sessions, tenant_id, 1000)
        for _ in range(5):
            settle(sessions, tenant_id, start, spent_micros=10, released_micros=100)

    with holding(engine, first):
        blocked = Background(lambda: budget_ledger.fold(sessions, batch_size=5))
        blocked.start()
        eventually(lambda: budget_waiters(engine), bool)  # it holds first's five entries

        assert budget_ledger.fold(sessions) == 5  # second's five, skipping the held ones
        assert row(sessions, second) == (50, 500)

    assert blocked.outcome() == 5
    assert row(sessions, first) == (50, 500)
    assert pending(sessions) == 0


@on_postgres
def test_an_enqueue_that_waits_out_a_fold_is_not_refused_for_it(
    engine, tenant, monkeypatch
) -> None:
    """A fold that commits while the enqueue's UPDATE waits for the row shows in the row
    but not in the UPDATE's snapshot of the ledger; the second try does not count it twice."""
    sessions = make_sessions(engine)
    first, second = two_tenants(engine, tenant)
    budgets.set_budget(engine, first, 500, "month")
    start = opened(sessions, first, 0)
    settle(sessions, first, start, spent_micros=300)  # owed: 300 of the 500
    settle(sessions, second, opened(sessions, second, 0), spent_micros=1)
    read, folding_held = threading.Event(), threading.Event()
    budget_terms = budgets.budget_terms

    def read_then_wait(*args: Any) -> budgets.Terms:
        terms = budget_terms(*args)
        read.set()
        assert folding_held.wait(30)
        return terms

    monkeypatch.setattr(budgets, "budget_terms", read_then_wait)

    def enqueue() -> datetime:
        with sessions.begin() as session:
            return budgets.reserve(session, first, 200)

    with holding(engine, second):
        enqueuing = Background(enqueue)
        enqueuing.start()
        assert read.wait(30)
        folding = Background(lambda: budget_ledger.fold(sessions))  # holds first's row
        folding.start()
        eventually(lambda: budget_waiters(engine), lambda waiting: len(waiting) == 1)
        folding_held.set()
        eventually(lambda: budget_waiters(engine), lambda waiting: len(waiting) == 2)

    assert folding.outcome() == 2
    assert enqueuing.outcome() == start
    assert row(sessions, first) == (300, 200)


def test_the_scheduler_folds_what_is_pending(settings, engine, tenant) -> None:
    sessions = make_sessions(engine)
    start = opened(sessions, tenant.tenant_id, 900)
    settle(sessions, tenant.tenant_id, start, spent_micros=400, released_micros=900)
    quick = settings.model_copy(update={"budget_fold_interval_s": 0.05})
    scheduler, leadership = build_scheduler(quick)
    thread = threading.Thread(target=scheduler.start, daemon=True)
    thread.start()
    try:
        eventually(lambda: pending(sessions), lambda left: left == 0)
    finally:
        scheduler.shutdown(wait=True)
        leadership.release()
    assert row(sessions, tenant.tenant_id) == (400, 0)
