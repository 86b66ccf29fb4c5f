"""Every paid call on the books: an answer that arrived but could not be committed is kept
and used by the next attempt instead of paying again, and a job whose outcome can never be
stored stops, dead-lettered with its cost, instead of calling its provider forever."""

from datetime import timedelta

import pytest
from sqlalchemy import select, text, update
from sqlalchemy.exc import DataError, IntegrityError, InternalError, OperationalError

from schema.tables import DeadLetter, Job, utcnow
from store import lifecycle
from store.budgets import set_budget
from tests.producers.test_api import CHAT
from tests.store.test_budgets import period
from tests.workers.test_webhooks import add_endpoint
from tests.workers.test_worker import attempts_of
from workers import execution
from workers.execution.commit import is_transient

on_postgresql = pytest.mark.parametrize("engine", ["postgresql"], indirect=True)


def lapse_lease(runtime, job_id: str) -> None:  # type: ignore[no-untyped-def]
    """Let time run past the job's lease, as it does for a worker that cannot commit."""
    with runtime.sessions.begin() as session:
        session.execute(
            update(Job)
            .where(Job.id == job_id)
            .values(lease_expires_at=utcnow() - timedelta(seconds=1))
        )


def lose_the_first_commit(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The server ends the session's connection after the outcome is written, before its
    COMMIT: a real transient failure, once."""
    finish = lifecycle.finish
    killed = []

    def finish_then_lose_the_connection(session, *args, **kwargs):  # type: ignore[no-untyped-def]
        moved = finish(session, *args, **kwargs)
        if not killed:
            killed.append(True)
            session.execute(text("SELECT pg_terminate_backend(pg_backend_pid())"))
        return moved

    monkeypatch.setattr(lifecycle, "finish", finish_then_lose_the_connection)


@on_postgresql
def test_an_answer_the_database_failed_to_commit_is_used_by_the_retry(
    client, auth, runtime, monkeypatch, sim_calls
) -> None:
    job_id = client.post("/v1/jobs", json=CHAT, headers=auth).json()["id"]
    lose_the_first_commit(monkeypatch)
    with pytest.raises(Exception, match=r"terminat|closed|connection"):
        execution.run_job(runtime, job_id)
    assert sim_calls() == 1
    with runtime.sessions() as session:
        assert session.get_one(Job, job_id).status == "running"

    lapse_lease(runtime, job_id)
    execution.run_job(runtime, job_id)

    job = client.get(f"/v1/jobs/{job_id}", headers=auth).json()
    assert job["status"] == "succeeded"
    assert sim_calls() == 1
    attempts = attempts_of(runtime, job_id)
    assert [a.status for a in attempts] == ["lost", "succeeded"]
    assert attempts[0].cost_micros == 0  # the kept answer's cost is the next attempt's
    assert attempts[1].cost_micros > 0
    assert round(job["cost_usd"] * 1_000_000) == attempts[1].cost_micros
    with runtime.sessions() as session:
        assert session.get_one(Job, job_id).lost_workers == 0  # a failed commit is no loss


@on_postgresql
def test_a_kept_answer_is_used_even_when_the_deadline_passed_meanwhile(
    client, auth, runtime, monkeypatch, sim_calls
) -> None:
    job_id = client.post("/v1/jobs", json=CHAT, headers=auth).json()["id"]
    lose_the_first_commit(monkeypatch)
    with pytest.raises(Exception, match=r"terminat|closed|connection"):
        execution.run_job(runtime, job_id)
    lapse_lease(runtime, job_id)
    with runtime.sessions.begin() as session:
        session.execute(update(Job).where(Job.id == job_id).values(deadline_at=utcnow()))

    execution.run_job(runtime, job_id)

    job = client.get(f"/v1/jobs/{job_id}", headers=auth).json()
    assert (job["status"], sim_calls()) == ("succeeded", 1)
    assert job["cost_usd"] > 0


def poison(runtime, sim_control, job_id: str, engine_name: str) -> None:  # type: ignore[no-untyped-def]
    """What a job's outcome cannot be stored with: on PostgreSQL, a NUL in the provider's
    text (jsonb refuses it); on SQLite, a lone surrogate in metadata stored before genq
    refused them at the door (its event cannot be encoded)."""
    if engine_name == "postgresql":
        sim_control.faults({"kind": "nul_text", "count": 1})
        return
    with runtime.sessions.begin() as session:
        session.execute(update(Job).where(Job.id == job_id).values(meta={"note": "\ud83d"}))


def test_an_outcome_that_cannot_be_stored_stops_the_job_and_keeps_its_cost(
    client, auth, engine, tenant, runtime, sim_control, sim_calls, hooks
) -> None:
    set_budget(engine, tenant.tenant_id, 50_000_000, "month")
    add_endpoint(client, auth, hooks.url(hooks.new()))  # its events carry the metadata
    job_id = client.post("/v1/jobs", json=CHAT, headers=auth).json()["id"]
    poison(runtime, sim_control, job_id, engine.dialect.name)

    execution.run_job(runtime, job_id)
    execution.run_job(runtime, job_id)  # a redelivered message calls nothing more

    assert sim_calls() == 1
    with runtime.sessions() as session:
        job = session.get_one(Job, job_id)
        assert job.status == "dead_lettered"
        assert job.error["type"] == "unstorable_outcome"
        assert "provider is not called again" in job.error["message"]
        assert job.reserved_micros == 0
        letter = session.scalars(select(DeadLetter).where(DeadLetter.job_id == job_id)).one()
        assert letter.error_class == "unstorable_outcome"
    (attempt,) = attempts_of(runtime, job_id)
    assert (attempt.status, attempt.error_class) == ("failed", "unstorable_outcome")
    assert attempt.cost_micros > 0 and attempt.output_tokens > 0
    budget = period(engine, tenant.tenant_id)
    assert (budget.reserved_micros, budget.spent_micros) == (0, attempt.cost_micros)


class Orig(Exception):
    def __init__(self, sqlstate: str | None) -> None:
        super().__init__("boom")
        self.sqlstate = sqlstate


@pytest.mark.parametrize(
    ("error", "transient"),
    [
        (OperationalError("COMMIT", {}, Orig("08006")), True),  # connection failure
        (OperationalError("UPDATE", {}, Orig("40P01")), True),  # deadlock
        (OperationalError("UPDATE", {}, Orig("57P01")), True),  # admin shutdown
        (InternalError("UPDATE", {}, Orig("25006")), True),  # read-only during failover
        (OperationalError("UPDATE", {}, Orig("54000")), False),  # row too big: never fits
        (DataError("UPDATE", {}, Orig("22P05")), False),  # untranslatable character (NUL)
        (IntegrityError("INSERT", {}, Orig("23505")), False),
        (OperationalError("UPDATE", {}, Orig(None)), True),  # SQLite: database is locked
        (UnicodeEncodeError("utf-8", "\ud83d", 0, 1, "surrogates not allowed"), False),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, Exception) else str(value),
)
def test_only_failures_that_pass_are_transient(error: Exception, transient: bool) -> None:
    assert is_transient(error) is transient
