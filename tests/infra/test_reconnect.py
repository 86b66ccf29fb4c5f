"""No pre-ping: a pooled connection the server dropped is found by the transaction's first
statement, and that transaction runs again on a new connection; one lost later in a
transaction is not run again."""

import pytest
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from infra.db import make_sessions
from infra.reconnect import transaction
from schema.tables import Job
from tests.infra.conftest import drop_connections
from tests.producers.test_api import CHAT
from workers import execution

on_postgresql = pytest.mark.parametrize("engine", ["postgresql"], indirect=True)


@pytest.mark.parametrize("unit", ["session", "connection"])
def test_a_transaction_on_a_dropped_pooled_connection_runs_again(
    own_engine: Engine, unit: str
) -> None:
    begin = make_sessions(own_engine).begin if unit == "session" else own_engine.begin
    with own_engine.connect() as connection:
        connection.execute(text("SELECT 1"))
    drop_connections(own_engine)
    runs = []

    def work(db: Session | Connection) -> int:
        runs.append(True)
        return db.execute(text("SELECT 41 + 1")).scalar_one()

    assert transaction(begin, work) == 42  # type: ignore[arg-type]
    assert len(runs) == 2


def test_a_connection_lost_mid_transaction_is_not_run_again(own_engine: Engine) -> None:
    runs = []

    def work(session: Session) -> None:
        runs.append(True)
        session.execute(text("SELECT 1"))
        session.execute(text("SELECT pg_terminate_backend(pg_backend_pid())"))

    with pytest.raises(DBAPIError) as raised:
        transaction(make_sessions(own_engine).begin, work)
    assert raised.value.connection_invalidated
    assert len(runs) == 1


@on_postgresql
def test_the_next_job_runs_after_the_pooled_connections_were_dropped(client, auth, runtime) -> None:
    first, second = (client.post("/v1/jobs", json=CHAT, headers=auth).json()["id"] for _ in "ab")
    execution.run_job(runtime, first)
    drop_connections(runtime.engine)

    execution.run_job(runtime, second)

    with runtime.sessions() as session:
        assert session.get_one(Job, second).status == "succeeded"
    # The suite's own cleanup shares this pool, and is not on the path that reconnects.
    runtime.engine.dispose()
