"""The scheduler: one leader among replicas, polls of long jobs, timeouts, cancel,
deadlines and the sweeps that keep every job moving."""

import threading
from datetime import timedelta

import pytest
from sqlalchemy import update

from schema.jobs import TERMINAL_STATUSES as TERMINAL
from schema.tables import Job, utcnow
from tests.helpers import override
from tests.waiting import eventually
from tests.workers.test_providers import VIDEO, run
from tests.workers.test_worker import attempts_of, job_of
from workers import execution
from workers.leader import KEY, Leadership
from workers.polling import PollState, next_poll_in_s
from workers.scheduler import build_scheduler
from workers.sweeps import expire_overdue, resend_stalled

SLOW_ASYNC = {"time_scale": 0.01, "fixed_duration_s": 300}
FAST_ASYNC = {"time_scale": 0.002, "fixed_duration_s": 100}


def test_one_leader_and_a_standby_takes_over_when_it_dies(runtime) -> None:
    client = runtime.broker.client
    first, second = Leadership(client, lease_s=1), Leadership(client, lease_s=1)

    assert (first.renew(), second.renew()) == (True, False)
    assert first.renew() and not second.renew()
    client.pexpire(KEY, 1)  # the leader died: its lease lapses unrenewed
    eventually(second.renew, lambda leads: leads)
    assert not first.renew()
    second.release()
    assert first.renew()


def test_only_the_leading_scheduler_dispatches(settings, runtime, monkeypatch) -> None:
    calls: list[str] = []
    monkeypatch.setattr("workers.scheduler.resend_stalled", lambda *a, **k: calls.append("x") or 0)
    quick = settings.model_copy(update={"sweep_interval_s": 0.05, "scheduler_lease_s": 3})
    (lead, lead_ship), (standby, standby_ship) = build_scheduler(quick), build_scheduler(quick)
    threads = [threading.Thread(target=s.start, daemon=True) for s in (lead, standby)]
    for thread in threads:
        thread.start()
    try:
        eventually(lambda: len(calls), lambda n: n >= 3)
        assert (lead_ship.held, standby_ship.held) == (True, False)
    finally:
        for scheduler in (lead, standby):
            scheduler.shutdown(wait=True)
        lead_ship.release()


@pytest.mark.parametrize("engine", ["postgresql"], indirect=True)
def test_a_long_job_is_polled_a_few_times_and_seen_done_soon(
    client, auth, routes, worker, sim_control
) -> None:
    sim_control.config(**SLOW_ASYNC)  # a 300 s video, at 1/100 of real time
    spec = routes.by_name["openai-video"].models["sora-2"]
    override(routes, "openai-video", models={"sora-2": spec.model_copy(update={
        "expected_duration_s": 3})})  # fmt: skip

    job = run(client, auth, VIDEO)

    (seen,) = sim_control.http.get("/_sim/jobs").json()["data"]
    assert job["status"] == "succeeded"
    assert 2 <= seen["polls"] <= 12
    assert seen["observed_at"] - seen["finished_at"] < 0.5 * seen["duration_s"]


def test_the_policy_aims_at_the_end_and_backs_off_past_it() -> None:
    steady = [next_poll_in_s(PollState(t, 100.0)) for t in (60, 90, 99)]
    late = [next_poll_in_s(PollState(t, 100.0)) for t in (110, 130, 150)]
    with_progress = next_poll_in_s(PollState(elapsed_s=10, expected_s=100, progress=80))
    hinted = next_poll_in_s(PollState(elapsed_s=10, expected_s=100, hint_s=20))

    assert steady == sorted(steady, reverse=True)
    assert steady[-1] < 3
    assert late == sorted(late)
    assert with_progress < 3
    assert hinted >= 18


@pytest.mark.parametrize("engine", ["postgresql"], indirect=True)
def test_a_provider_failing_mid_job_fails_it_with_the_reason(client, auth, worker, sim_control):
    sim_control.config(**FAST_ASYNC)

    job = run(client, auth, {**VIDEO, "input": {"prompt": "this will fail", "seconds": "4"}})

    assert (job["status"], job["error"]["type"]) == ("failed", "provider_job_failed")
    assert "video failed" in job["error"]["message"]


@pytest.mark.parametrize("engine", ["postgresql"], indirect=True)
def test_a_job_past_its_models_hard_timeout_is_stopped(
    client, auth, routes, worker, runtime, sim_control
) -> None:
    sim_control.config(**SLOW_ASYNC)
    models = {"sora-2": routes.by_name["openai-video"].models["sora-2"].model_copy(
        update={"max_duration_s": 0.3, "expected_duration_s": 0.1})}  # fmt: skip
    override(routes, "openai-video", models=models)

    job = run(client, auth, VIDEO)

    assert (job["status"], job["error"]["type"]) == ("failed", "provider_job_timeout")
    assert sim_control.calls("videos.delete") == 1
    assert [a.status for a in attempts_of(runtime, job["id"])] == ["failed"]


@pytest.mark.parametrize("engine", ["postgresql"], indirect=True)
def test_cancel_a_waiting_job_cancels_it_at_the_provider(client, auth, worker, sim_control):
    sim_control.config(**SLOW_ASYNC)
    job_id = client.post("/v1/jobs", json=VIDEO, headers=auth).json()["id"]
    job_of(client, auth, job_id, {"waiting"})

    canceled = client.post(f"/v1/jobs/{job_id}/cancel", headers=auth)

    assert canceled.json()["status"] == "canceled"
    eventually(lambda: sim_control.calls("videos.delete"), lambda n: n == 1)
    assert client.get(f"/v1/jobs/{job_id}", headers=auth).json()["status"] == "canceled"


def test_queued_jobs_past_their_deadline_are_expired(client, auth, runtime) -> None:
    job_id = client.post("/v1/jobs", json={**VIDEO, "deadline_s": 30}, headers=auth).json()["id"]
    with runtime.sessions.begin() as session:
        session.execute(
            update(Job).where(Job.id == job_id).values(deadline_at=utcnow() - timedelta(1))
        )

    assert expire_overdue(runtime.sessions, runtime.broker, runtime.settings) == 1

    job = client.get(f"/v1/jobs/{job_id}", headers=auth).json()
    assert (job["status"], job["error"]["type"]) == ("failed", "deadline_exceeded")
    assert expire_overdue(runtime.sessions, runtime.broker, runtime.settings) == 0


@pytest.mark.parametrize("engine", ["postgresql"], indirect=True)
def test_a_lost_poll_message_is_dispatched_again(client, auth, runtime, sim_control) -> None:
    sim_control.config(**FAST_ASYNC)
    job_id = client.post("/v1/jobs", json=VIDEO, headers=auth).json()["id"]
    execution.run_job(runtime, job_id)
    runtime.broker.flush_all()  # the broker lost every message
    with runtime.sessions.begin() as session:
        session.execute(
            update(Job).where(Job.id == job_id).values(next_poll_at=utcnow() - timedelta(1))
        )

    assert resend_stalled(runtime.sessions, runtime.broker, grace_s=0) == 1
    eventually(
        lambda: (
            execution.poll_job(runtime, job_id)
            or client.get(f"/v1/jobs/{job_id}", headers=auth).json()["status"]
        ),
        lambda status: status in TERMINAL,
    )
