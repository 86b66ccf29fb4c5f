"""Store round trips one chat job costs the worker on PostgreSQL. The job's head is read, the
job claimed with its attempt's row written, and its outcome written (the job's row, its
attempt's and the budget's ledger entry) by one statement each, committed alone on the
driver: no BEGIN and no COMMIT of their own. An outcome that writes more (an event) is
one transaction."""

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from psycopg.pq import TransactionStatus
from sqlalchemy import Connection, select

from schema.names import JOBS_QUEUE
from schema.tables import BudgetEntry, Job, JobAttempt, WebhookEvent
from store import lifecycle
from tests.helpers import listening
from tests.producers.test_api import CHAT
from workers import execution
from workers.runtime import Runtime

pytestmark = pytest.mark.parametrize("engine", ["postgresql"], indirect=True)


def _idle(connection: Connection) -> bool:
    dbapi = connection.connection.dbapi_connection
    return dbapi.info.transaction_status == TransactionStatus.IDLE  # type: ignore[union-attr]


@contextmanager
def round_trips(runtime: Runtime) -> Iterator[list[str]]:
    """Each round trip to the store: a statement (its first word), and the BEGIN psycopg
    sends before the first statement of a transaction and the COMMIT that ends it. The
    statements run straight on the driver commit alone."""
    trips: list[str] = []

    def statement(connection: Connection, _cursor: Any, sql: str, *_: Any) -> None:
        dbapi = connection.connection.dbapi_connection
        if not dbapi.autocommit and _idle(connection):  # type: ignore[union-attr]
            trips.append("BEGIN")
        trips.append(sql.split(None, 1)[0])

    def commit(connection: Connection) -> None:
        if not _idle(connection):
            trips.append("COMMIT")

    def direct(sql: str) -> None:
        trips.append(sql.split(None, 1)[0])

    assert runtime.direct is not None
    runtime.direct.listeners.append(direct)
    try:
        with listening(runtime.engine, before_cursor_execute=statement, commit=commit):
            yield trips
    finally:
        runtime.direct.listeners.remove(direct)


def test_the_head_the_claim_and_the_outcome_are_a_round_trip_each(client, auth, runtime) -> None:
    first, job_id = (client.post("/v1/jobs", json=CHAT, headers=auth).json()["id"] for _ in "ab")
    with round_trips(runtime) as first_trips:
        execution.run_job(runtime, first)

    with round_trips(runtime) as trips:
        execution.run_job(runtime, job_id)

    assert client.get(f"/v1/jobs/{job_id}", headers=auth).json()["status"] == "succeeded"
    head, claim = ["SELECT"], ["WITH"]
    endpoints_read = ["BEGIN", "WITH", "SELECT", "COMMIT"]
    assert first_trips == head + claim + endpoints_read
    assert trips == head + claim + ["WITH"]
    with runtime.engine.connect() as connection:
        entries = connection.execute(
            select(BudgetEntry.spent_micros, BudgetEntry.released_micros)
        ).all()
        attempt = connection.execute(
            select(JobAttempt.status, JobAttempt.cost_micros).where(JobAttempt.job_id == job_id)
        ).one()
        cost = connection.scalar(select(Job.cost_micros).where(Job.id == job_id))
    assert attempt == ("succeeded", cost) and cost > 0
    assert sum(spent for spent, _ in entries) == 2 * cost


def test_an_outcome_someone_listens_for_is_a_transaction_with_its_event(
    client, auth, runtime
) -> None:
    hooked = {**CHAT, "webhook_url": "http://127.0.0.1:9/hook"}
    first = client.post("/v1/jobs", json=CHAT, headers=auth).json()["id"]
    job_id = client.post("/v1/jobs", json=hooked, headers=auth).json()["id"]
    execution.run_job(runtime, first)  # caches the tenant's webhook endpoints

    with round_trips(runtime) as trips:
        execution.run_job(runtime, job_id)

    assert trips[2] == "BEGIN" and trips[-1] == "COMMIT"
    with runtime.engine.connect() as connection:
        events = connection.scalars(
            select(WebhookEvent.type).where(WebhookEvent.job_id == job_id)
        ).all()
    assert events == ["job.succeeded"]


def test_a_job_another_worker_holds_costs_a_transaction_more(client, auth, runtime) -> None:
    job_id = client.post("/v1/jobs", json=CHAT, headers=auth).json()["id"]
    with runtime.sessions.begin() as session:
        assert lifecycle.claim(session, job_id, lease_s=60) is not None
    runtime.broker.flush_all()

    with round_trips(runtime) as trips:
        execution.run_job(runtime, job_id)

    head, claim = ["SELECT"], ["WITH"]
    recheck = ["BEGIN", "SELECT", "INSERT", "COMMIT"]
    sent_mark = ["BEGIN", "SET", "UPDATE", "COMMIT"]
    assert trips == head + claim + recheck + sent_mark
    assert runtime.broker.client.hlen(f"genq:{JOBS_QUEUE}.DQ.msgs") == 1
