"""An enqueue reserves under the budget period its API process last read, checked in the
reservation's own statement: no read of the tenant's terms, a limit that still holds, and
a period changed since that stores the jobs under the new one."""

import pytest
from sqlalchemy import Engine, event, select

from producers.producer import Producer
from schema.jobs import JobCreate
from schema.tables import BudgetPeriod, Job, utcnow
from store import budgets
from store.budgets import BudgetExceededError, period_start
from tests.producers.test_api import CHAT
from tests.store.test_budgets import estimate, period

REQUEST = JobCreate.model_validate({**CHAT, "cache": False})


class Statements:
    """The SQL a producer runs while listening, through SQLAlchemy or straight on the
    driver."""

    def __init__(self, producer: Producer) -> None:
        self.producer = producer
        self.seen: list[str] = []

    def __enter__(self) -> list[str]:
        event.listen(self.producer.engine, "before_cursor_execute", self._note)
        if self.producer.direct is not None:
            self.producer.direct.listeners.append(self._heard)
        return self.seen

    def __exit__(self, *_: object) -> None:
        event.remove(self.producer.engine, "before_cursor_execute", self._note)
        if self.producer.direct is not None:
            self.producer.direct.listeners.remove(self._heard)

    def _note(self, _conn, _cursor, statement: str, *_: object) -> None:  # type: ignore[no-untyped-def]
        self._heard(statement)

    def _heard(self, statement: str) -> None:
        self.seen.append(" ".join(statement.split()))


def test_a_known_period_reserves_without_reading_the_terms(
    producer: Producer, engine: Engine, routes, tenant
) -> None:
    budgets.set_budget(engine, tenant.tenant_id, estimate(routes) * 10, "month")
    producer.submit(tenant.tenant_id, REQUEST)

    with Statements(producer) as seen:
        producer.submit(tenant.tenant_id, REQUEST)

    terms_reads = [s for s in seen if s.startswith("SELECT") and "budget_period" in s]
    assert terms_reads == []
    if engine.dialect.name == "postgresql":  # the job, its message and its reservation
        assert [s.split()[:3] for s in seen] == [["WITH", "reserved", "AS"]]
    else:  # the budget row before the job's key: the order of the statement above
        assert [s.split()[0] for s in seen] == ["UPDATE", "INSERT", "INSERT"]
    assert period(engine, tenant.tenant_id).reserved_micros == estimate(routes) * 2


def test_a_known_period_still_refuses_past_the_limit(
    producer: Producer, engine: Engine, routes, tenant
) -> None:
    budgets.set_budget(engine, tenant.tenant_id, estimate(routes) * 3 // 2, "month")
    producer.submit(tenant.tenant_id, REQUEST)

    with pytest.raises(BudgetExceededError):
        producer.submit(tenant.tenant_id, REQUEST)

    with engine.connect() as connection:
        stored = connection.scalars(select(Job.id).where(Job.tenant_id == tenant.tenant_id))
        assert len(list(stored)) == 1
    assert period(engine, tenant.tenant_id).reserved_micros == estimate(routes)


def test_a_period_changed_since_it_was_read_stores_the_job_under_the_new_one(
    producer: Producer, engine: Engine, routes, tenant
) -> None:
    budgets.set_budget(engine, tenant.tenant_id, None, "month")
    producer.submit(tenant.tenant_id, REQUEST)
    budgets.set_budget(engine, tenant.tenant_id, estimate(routes) * 10, "day")

    job, _ = producer.submit(tenant.tenant_id, REQUEST)

    day = period_start("day", utcnow())
    with engine.connect() as connection:
        stored = connection.scalar(select(Job.budget_period_start).where(Job.id == job.id))
        reserved = connection.scalar(
            select(BudgetPeriod.reserved_micros).where(
                BudgetPeriod.tenant_id == tenant.tenant_id, BudgetPeriod.period_start == day
            )
        )
    assert stored is not None and stored.replace(tzinfo=day.tzinfo) == day
    assert reserved == estimate(routes)
