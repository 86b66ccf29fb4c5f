"""The job state machine: its transition table, a refused move on a real job, and that no
other module writes a job's status."""

import ast
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, func, select, update

from schema.errors import IllegalTransitionError
from schema.jobs import JobStatus
from schema.names import RUN_JOB
from schema.tables import BudgetEntry, Job, JobAttempt, OutboxMessage, utcnow
from schema.transitions import TRANSITIONS, check_move
from store import job_interventions, lifecycle
from store.moves import AttemptRecord, Claim, Ended, NextMessage, Outcome
from store.webhook_targets import EndpointRow
from tests.producers.test_api import CHAT

ROOT = Path(__file__).resolve().parents[2]
PRODUCT_ROOMS = ("schema", "infra", "store", "producers", "workers", "genq")
ALL_PAIRS = [(source, target) for source in [None, *JobStatus] for target in JobStatus]


@pytest.mark.parametrize(("source", "target"), ALL_PAIRS, ids=lambda s: str(s))
def test_every_move_is_allowed_or_refused_as_the_table_says(source, target) -> None:
    if target in TRANSITIONS[source]:
        check_move(source, target)
    else:
        with pytest.raises(IllegalTransitionError, match="a job cannot go from"):
            check_move(source, target)


def test_ended_jobs_go_nowhere_but_a_dead_letter_may_restart() -> None:
    for ended in (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELED):
        assert TRANSITIONS[ended] == frozenset()
    assert TRANSITIONS[JobStatus.DEAD_LETTERED] == {JobStatus.QUEUED}


def test_finish_refuses_to_requeue_a_succeeded_job_and_writes_nothing(
    client, auth, runtime
) -> None:
    claim = _claimed_job(client, auth, runtime)
    job_id = claim.job_id
    with runtime.sessions.begin() as session:
        session.get_one(Job, job_id).status = JobStatus.SUCCEEDED
    stale = Claim(**{**claim.__dict__, "held": JobStatus.SUCCEEDED})
    attempt = AttemptRecord({"job_id": job_id, "number": 1, "status": "failed"})
    with runtime.sessions.begin() as session:
        before = session.scalar(select(func.count()).select_from(OutboxMessage))
    refused = pytest.raises(IllegalTransitionError, match="from succeeded to queued")
    with refused, runtime.sessions.begin() as session:
        outcome = Outcome(JobStatus.QUEUED, {}, attempt)
        lifecycle.finish(session, runtime.settings, stale, outcome)
    with runtime.sessions() as session:
        assert session.get_one(Job, job_id).status == JobStatus.SUCCEEDED
        rows = session.scalars(select(JobAttempt).where(JobAttempt.job_id == job_id)).all()
        assert [row.status for row in rows] == ["started"]
        assert session.scalar(select(func.count()).select_from(OutboxMessage)) == before


def _claimed_job(client, auth, runtime) -> Claim:
    """A new chat job, claimed for its first attempt."""
    job_id = client.post("/v1/jobs", json=CHAT, headers=auth).json()["id"]
    with runtime.sessions.begin() as session:
        claim = lifecycle.claim(session, job_id, lease_s=60)
    assert claim is not None
    return claim


def test_a_canceled_job_cannot_be_canceled_again(client, auth, producer) -> None:
    job_id = client.post("/v1/jobs", json=CHAT, headers=auth).json()["id"]
    assert client.post(f"/v1/jobs/{job_id}/cancel", headers=auth).status_code == 200
    with (
        producer.sessions.begin() as session,
        pytest.raises(job_interventions.JobNotCancelableError, match="already canceled"),
    ):
        job_interventions.cancel(session, producer.settings, job_id)


def _status_writes(path: Path) -> list[str]:
    """Places in ``path`` that set a job's status: ``update(Job)…values(status=…)``,
    ``Job(status=…)`` and ``job.status = …``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call):
            keywords = {k.arg for k in node.keywords}
            func = node.func
            if isinstance(func, ast.Name) and func.id == "Job" and "status" in keywords:
                found.append(f"{path}:{node.lineno}")
            if (
                isinstance(func, ast.Attribute)
                and func.attr == "values"
                and "status" in keywords
                and any(f"update({t})" in ast.unparse(func.value) for t in ("Job", "JOBS"))
            ):
                found.append(f"{path}:{node.lineno}")
        if isinstance(node, ast.Assign):
            found.extend(
                f"{path}:{node.lineno}"
                for target in node.targets
                if isinstance(target, ast.Attribute)
                and target.attr == "status"
                and "job" in ast.unparse(target.value).lower()
            )
    return found


# The statements that write a status, the moves made from outside an attempt, and the moves
# of the job's life (which pass their statuses to those statements as parameters).
WRITERS = (ROOT / "store" / "job_statements.py", ROOT / "store" / "job_interventions.py")
STATE_MACHINE = (*WRITERS, ROOT / "store" / "lifecycle.py")


def test_nothing_but_the_state_machine_writes_a_jobs_status() -> None:
    writers = [
        place
        for room in PRODUCT_ROOMS
        for path in sorted((ROOT / room).rglob("*.py"))
        if path not in STATE_MACHINE
        for place in _status_writes(path)
    ]
    assert writers == []
    for path in WRITERS:
        assert _status_writes(path), f"the check must see the writes of {path.name}"


@pytest.mark.parametrize("engine", ["postgresql"], indirect=True)
@pytest.mark.parametrize("meanwhile", ["attempt closed", "job canceled"])
def test_an_outcome_alone_writes_nothing_when_the_attempt_or_job_moved_meanwhile(
    client, auth, runtime, meanwhile
) -> None:
    claim = _claimed_job(client, auth, runtime)
    job_id = claim.job_id
    if meanwhile == "attempt closed":
        with runtime.sessions.begin() as session:
            session.execute(update(JobAttempt).values(status="lost"))
    else:
        assert client.post(f"/v1/jobs/{job_id}/cancel", headers=auth).status_code == 200
    with runtime.engine.connect() as connection:
        before = _job_books(connection, job_id)
    attempt = AttemptRecord({"status": "succeeded", "cost_micros": 7, "finished_at": utcnow()})
    outcome = Outcome(JobStatus.SUCCEEDED, {"output": {"text": "hi"}}, attempt, 7)

    assert lifecycle.finish_alone(runtime.direct, claim, outcome, endpoints=[]) is None

    with runtime.engine.connect() as connection:
        assert _job_books(connection, job_id) == before


def _job_books(connection: Connection, job_id: str) -> tuple[Any, ...]:
    """The job's row, its attempts' and the budget ledger, as written."""
    job = connection.execute(select(Job.__table__).where(Job.id == job_id)).one()
    attempts = connection.execute(select(JobAttempt.__table__)).all()
    ledger = connection.execute(select(BudgetEntry.__table__)).all()
    return job, attempts, ledger


@pytest.mark.parametrize("engine", ["postgresql"], indirect=True)
def test_an_outcome_alone_is_refused_when_it_writes_more_or_its_listeners_are_unknown(
    client, auth, runtime
) -> None:
    claim = _claimed_job(client, auth, runtime)
    job_id = claim.job_id
    attempt = AttemptRecord({"status": "failed", "finished_at": utcnow()})
    error = {"type": "provider_error", "message": "no"}
    letter = Outcome(JobStatus.DEAD_LETTERED, {"error": error}, attempt)
    retry = Outcome(JobStatus.QUEUED, {}, attempt, next=NextMessage(RUN_JOB, 1.0))
    done = Outcome(JobStatus.SUCCEEDED, {"output": {}}, attempt)
    endpoint = EndpointRow("whe_1", "http://127.0.0.1:9/hook", None, True, None)
    hooked = Claim(**{**claim.__dict__, "webhook_url": "http://127.0.0.1:9/hook"})

    assert lifecycle.finish_alone(runtime.direct, claim, letter, endpoints=[]) is None
    assert lifecycle.finish_alone(runtime.direct, claim, retry, endpoints=[]) is None
    assert lifecycle.finish_alone(runtime.direct, claim, done, endpoints=None) is None
    assert lifecycle.finish_alone(runtime.direct, claim, done, endpoints=[endpoint]) is None
    assert lifecycle.finish_alone(runtime.direct, hooked, done, endpoints=[]) is None

    with runtime.engine.connect() as connection:
        status = connection.scalar(select(Job.status).where(Job.id == job_id))
    assert status == JobStatus.RUNNING


@pytest.mark.parametrize("engine", ["postgresql"], indirect=True)
def test_an_outcome_alone_returns_what_the_ended_job_metric_reads(client, auth, runtime) -> None:
    claim = _claimed_job(client, auth, runtime)
    attempt = AttemptRecord({"status": "succeeded", "cost_micros": 7, "finished_at": utcnow()})
    outcome = Outcome(JobStatus.SUCCEEDED, {"output": {"text": "hi"}}, attempt, 7)

    moved = lifecycle.finish_alone(runtime.direct, claim, outcome, endpoints=[])

    assert moved is not None and moved.messages == []
    with runtime.engine.connect() as connection:
        job = connection.execute(select(Job.__table__).where(Job.id == claim.job_id)).one()
        closed = connection.scalar(select(JobAttempt.status).where(JobAttempt.job_id == job.id))
    assert moved.ended == [Ended(job.route, "succeeded", job.created_at, job.finished_at)]
    assert (job.output, job.cost_micros, closed) == ({"text": "hi"}, 7, "succeeded")
