"""On PostgreSQL one job is submitted in one statement committed alone: the job, its
run_job message and its budget reservation, all or nothing. When that statement writes
nothing (a key used before, the budget, a period with no row yet) the job goes the
transaction's way, which stores it or says why not."""

from typing import Any

import pytest
from sqlalchemy import Engine, select

from infra.db import make_sessions
from producers.producer import Producer
from schema.jobs import JobCreate
from schema.tables import Job, OutboxMessage
from store import budgets
from store.submissions import IdempotencyConflictError, Submission, store, store_alone
from tests.producers.test_api import CHAT, counts
from tests.store.test_budgets import estimate, period

REQUEST = JobCreate.model_validate({**CHAT, "cache": False, "metadata": {"user": "u1"}})
WRITTEN_AT = {"id", "created_at", "updated_at", "deadline_at", "idempotency_key"}


@pytest.fixture
def engine(pg_engine: Engine) -> Engine:
    return pg_engine


def stored_row(engine: Engine, job_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The job's columns but those that differ between two submissions, and its message's."""
    with engine.connect() as connection:
        job = connection.execute(select(Job.__table__).where(Job.id == job_id)).one()
        message = connection.execute(
            select(OutboxMessage.kwargs, OutboxMessage.queue_name, OutboxMessage.actor_name).where(
                OutboxMessage.kwargs["job_id"].as_string() == job_id
            )
        ).one()
    columns = {k: v for k, v in job._asdict().items() if k not in WRITTEN_AT}
    return columns, {**message._asdict(), "kwargs": None}


def test_one_statement_stores_the_job_as_a_transaction_would(
    producer: Producer, engine: Engine, routes, tenant
) -> None:
    budgets.set_budget(engine, tenant.tenant_id, estimate(routes) * 10, "month")
    in_transaction = Submission(REQUEST, "first")
    with make_sessions(engine).begin() as session:
        (first,) = store(session, routes, tenant.tenant_id, [in_transaction], 3600)
    assert producer.direct is not None

    alone = store_alone(
        producer.direct, routes, tenant.tenant_id, Submission(REQUEST, "second"), 3600, "month"
    )

    assert alone is not None and alone.outbox_row is not None
    assert stored_row(engine, alone.job.id) == stored_row(engine, first.job.id)
    assert alone.outbox_row.kwargs == {"job_id": alone.job.id}
    assert counts(engine) == (2, 2)
    assert period(engine, tenant.tenant_id).reserved_micros == estimate(routes) * 2


def test_a_key_used_before_reserves_nothing_more_and_replays_the_first_job(
    producer: Producer, engine: Engine, routes, tenant
) -> None:
    first, _ = producer.submit(tenant.tenant_id, REQUEST, idempotency_key="k1")

    again, replayed = producer.submit(tenant.tenant_id, REQUEST, idempotency_key="k1")
    other = JobCreate.model_validate({**CHAT, "cache": False})
    with pytest.raises(IdempotencyConflictError):
        producer.submit(tenant.tenant_id, other, idempotency_key="k1")

    assert (again.id, replayed) == (first.id, True)
    assert counts(engine) == (1, 1)
    assert period(engine, tenant.tenant_id).reserved_micros == estimate(routes)


def test_a_budget_the_job_would_pass_writes_nothing_alone(
    producer: Producer, engine: Engine, routes, tenant
) -> None:
    budgets.set_budget(engine, tenant.tenant_id, estimate(routes) * 3 // 2, "month")
    producer.submit(tenant.tenant_id, REQUEST)
    assert producer.direct is not None

    alone = store_alone(
        producer.direct, routes, tenant.tenant_id, Submission(REQUEST, None), 60, "month"
    )

    assert alone is None
    assert counts(engine) == (1, 1)
    assert period(engine, tenant.tenant_id).reserved_micros == estimate(routes)


def test_the_first_job_of_a_period_makes_its_row_in_a_transaction(
    producer: Producer, engine: Engine, routes, tenant
) -> None:
    budgets.set_budget(engine, tenant.tenant_id, None, "month")
    assert producer.direct is not None
    submission = Submission(REQUEST, None)

    alone = store_alone(producer.direct, routes, tenant.tenant_id, submission, 60, "month")
    job, _ = producer.submit(tenant.tenant_id, REQUEST)

    assert alone is None
    assert counts(engine) == (1, 1)
    assert period(engine, tenant.tenant_id).reserved_micros == estimate(routes)
    assert job.status == "queued"
