"""On PostgreSQL one job is submitted in one statement committed alone: the job, its
run_job message and its budget reservation, all or nothing. When that statement writes
nothing (a key used before, the budget, a period with no row yet) the job goes the
transaction's way, which stores it or says why not."""

from typing import Any

import psycopg
import pytest
from sqlalchemy import Engine, select
from sqlalchemy.exc import DBAPIError, IntegrityError

from infra.db import make_sessions
from infra.direct import Compiled, Fetched
from producers.producer import Producer
from schema.jobs import JobCreate
from schema.tables import Job, OutboxMessage
from store import budgets, outbox
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


def test_a_statement_run_again_after_its_answer_was_lost_finds_its_job_written(
    producer: Producer, engine: Engine, routes, tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    producer.submit(tenant.tenant_id, REQUEST)
    assert producer.direct is not None
    run = producer.direct._run
    answers: list[Fetched] = []

    def committed_then_dropped(compiled: Compiled, values: dict[str, Any]) -> Fetched:
        answers.append(run(compiled, values))
        if len(answers) > 1:
            return answers[-1]
        lost = psycopg.OperationalError("server closed the connection unexpectedly")
        raise DBAPIError.instance(
            compiled.sql, values, lost, psycopg.Error, connection_invalidated=True
        )

    monkeypatch.setattr(producer.direct, "_run", committed_then_dropped)
    alone = store_alone(
        producer.direct, routes, tenant.tenant_id, Submission(REQUEST, None), 60, "month"
    )

    assert alone is not None and alone.outbox_row is not None
    assert counts(engine) == (2, 2)
    assert period(engine, tenant.tenant_id).reserved_micros == estimate(routes) * 2
    with engine.connect() as connection:
        message = connection.scalar(
            select(OutboxMessage.kwargs).where(OutboxMessage.id == alone.outbox_row.id)
        )
    assert message == {"job_id": alone.job.id}


def test_a_conflict_that_is_not_the_jobs_key_is_raised_and_writes_nothing(
    producer: Producer, engine: Engine, routes, tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    producer.submit(tenant.tenant_id, REQUEST)
    with engine.connect() as connection:
        taken = connection.scalar(select(OutboxMessage.message_id))
    monkeypatch.setattr(outbox, "new_id", lambda prefix: taken)
    assert producer.direct is not None

    with pytest.raises(IntegrityError):
        store_alone(
            producer.direct, routes, tenant.tenant_id, Submission(REQUEST, "k"), 60, "month"
        )

    assert counts(engine) == (1, 1)
    assert period(engine, tenant.tenant_id).reserved_micros == estimate(routes)
