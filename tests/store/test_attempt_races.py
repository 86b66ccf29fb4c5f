"""Attempt rows under races: an outcome is never counted twice, a lost estimate stands until
a real outcome replaces it, and a provider job started for a job that moved on is stopped."""

from datetime import timedelta

from sqlalchemy import func, select, update

from schema.jobs import JobStatus
from schema.names import CANCEL_JOB
from schema.tables import BudgetEntry, Job, JobAttempt, utcnow
from store import lifecycle
from store.moves import AttemptRecord, Claim, NextMessage, Outcome
from tests.producers.test_api import CHAT

SUBMITTED = Outcome(
    JobStatus.WAITING,
    {"provider_job_id": "pj_1", "next_poll_at": utcnow(), "polls": 0},
    AttemptRecord({"status": "submitted"}),
    next=NextMessage("poll_job", 1.0),
)
DONE = Outcome(
    JobStatus.SUCCEEDED,
    {"output": {"text": "done"}},
    AttemptRecord({"status": "succeeded", "cost_micros": 1000}),
    1000,
)


def lapse(runtime, job_id: str) -> None:  # type: ignore[no-untyped-def]
    with runtime.sessions.begin() as session:
        past = utcnow() - timedelta(seconds=1)
        session.execute(update(Job).where(Job.id == job_id).values(lease_expires_at=past))


def claimed(client, auth, runtime) -> tuple[str, Claim]:  # type: ignore[no-untyped-def]
    """A new job, claimed for its first attempt."""
    job_id = client.post("/v1/jobs", json=CHAT, headers=auth).json()["id"]
    with runtime.sessions.begin() as session:
        held = lifecycle.claim(session, job_id, lease_s=60)
    assert held is not None
    return job_id, held


def books(runtime, job_id: str) -> tuple[int, list[tuple[str, int, bool]]]:  # type: ignore[no-untyped-def]
    with runtime.sessions() as session:
        rows = session.scalars(
            select(JobAttempt).where(JobAttempt.job_id == job_id).order_by(JobAttempt.number)
        ).all()
        cost = session.get_one(Job, job_id).cost_micros
    return cost, [(r.status, r.cost_micros, r.cost_estimated) for r in rows]


def test_two_overlapping_polls_of_one_provider_job_count_it_once(client, auth, runtime) -> None:
    job_id = client.post("/v1/jobs", json=CHAT, headers=auth).json()["id"]
    with runtime.sessions.begin() as session:
        held = lifecycle.claim(session, job_id, lease_s=60)
        lifecycle.finish(session, runtime.settings, held, SUBMITTED)
    with runtime.sessions.begin() as session:
        slow = lifecycle.claim_poll(session, job_id, lease_s=60)
    lapse(runtime, job_id)  # the slow poll outlives its lease; another poll starts
    with runtime.sessions.begin() as session:
        fast = lifecycle.claim_poll(session, job_id, lease_s=60)

    with runtime.sessions.begin() as session:
        assert lifecycle.finish(session, runtime.settings, fast, DONE).changed
    with runtime.sessions.begin() as session:
        assert not lifecycle.finish(session, runtime.settings, slow, DONE).changed

    assert books(runtime, job_id) == (1000, [("succeeded", 1000, False)])


def test_a_late_submit_on_a_taken_over_job_keeps_the_estimate_and_stops_its_provider_job(
    client, auth, runtime
) -> None:
    job_id, slow = claimed(client, auth, runtime)
    lapse(runtime, job_id)
    with runtime.sessions.begin() as session:
        lifecycle.claim(session, job_id, lease_s=60, taking_over=True, lost_cost_micros=500)

    late = Outcome(
        JobStatus.WAITING,
        {"provider_job_id": "pj_orphan", "next_poll_at": utcnow(), "polls": 0},
        AttemptRecord({"status": "submitted"}),
        next=NextMessage("poll_job", 1.0),
    )
    with runtime.sessions.begin() as session:
        moved = lifecycle.finish(session, runtime.settings, slow, late)

    assert not moved.changed
    (stop,) = moved.messages
    assert stop.actor_name == CANCEL_JOB
    assert stop.kwargs == {
        "job_id": job_id,
        "provider_job_id": "pj_orphan",
        "model": slow.current_model,
    }
    assert books(runtime, job_id) == (500, [("lost", 500, True), ("started", 0, False)])


def test_a_job_canceled_mid_call_is_on_the_books_until_its_worker_reports(
    client, auth, runtime, producer, tenant
) -> None:
    job_id, held = claimed(client, auth, runtime)
    assert client.post(f"/v1/jobs/{job_id}/cancel", headers=auth).status_code == 200
    cost, rows = books(runtime, job_id)
    assert rows == [("canceled", held.reserved_micros, True)] and cost == held.reserved_micros

    with runtime.sessions.begin() as session:  # the worker's call comes back after all
        assert not lifecycle.finish(session, runtime.settings, held, DONE).changed

    assert books(runtime, job_id) == (1000, [("succeeded", 1000, False)])


def test_an_outcome_whose_attempt_was_closed_at_an_estimate_replaces_the_estimate(
    client, auth, runtime
) -> None:
    job_id, held = claimed(client, auth, runtime)
    with runtime.sessions.begin() as session:
        session.execute(
            update(JobAttempt)
            .where(JobAttempt.job_id == job_id)
            .values(status="lost", cost_micros=500, cost_estimated=True)
        )
        session.execute(update(Job).where(Job.id == job_id).values(cost_micros=500))
        session.add(
            BudgetEntry(
                tenant_id=held.tenant_id,
                period_start=held.budget_period_start,
                spent_micros=500,
                released_micros=0,
            )
        )

    with runtime.sessions.begin() as session:
        assert lifecycle.finish(session, runtime.settings, held, DONE).changed

    assert books(runtime, job_id) == (1000, [("succeeded", 1000, False)])
    with runtime.sessions() as session:
        spent, released = session.execute(
            select(func.sum(BudgetEntry.spent_micros), func.sum(BudgetEntry.released_micros)).where(
                BudgetEntry.tenant_id == held.tenant_id
            )
        ).one()
    assert (spent, released) == (1000, held.reserved_micros)
