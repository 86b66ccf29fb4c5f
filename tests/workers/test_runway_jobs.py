"""Runway video jobs through the worker against the simulator: success with expiring URLs,
a task that fails with a code, a refused body, a cancel at the provider, and a fallback
from OpenAI videos that translates the input."""

import pytest

from schema.jobs import TERMINAL_STATUSES as TERMINAL
from schema.routes import Route
from tests.helpers import override
from tests.waiting import eventually
from tests.workers.test_worker import attempts_of, job_of

FAST_ASYNC = {"time_scale": 0.002, "fixed_duration_s": 100}
RUNWAY = {
    "model": "runway/gen4.5",
    "input": {"promptText": "a lighthouse", "ratio": "1280:720", "duration": 6},
}

pytestmark = pytest.mark.parametrize("engine", ["postgresql"], indirect=True)


@pytest.fixture(autouse=True)
def runway_route(routes, sim) -> None:
    """A Runway account on the simulator, served beside the shared test routes."""
    routes.by_name["runway"] = Route(
        name="runway",
        protocol="runway-tasks",
        base_url=sim.url,
        api_key_env="GENQ_TEST_SIM_KEY",
        timeout_s=10,
        models={"gen4.5": {"per_video_second": 0.12, "expected_duration_s": 1}},
    )


def run(client, auth, body: dict) -> dict:  # type: ignore[type-arg]
    response = client.post("/v1/jobs", json=body, headers=auth)
    assert response.status_code == 202, response.text
    return job_of(client, auth, response.json()["id"], TERMINAL)


def test_a_runway_task_is_submitted_polled_and_priced(client, auth, worker, runtime, sim_control):
    sim_control.config(**FAST_ASYNC)

    job = run(client, auth, RUNWAY)

    assert job["status"] == "succeeded"
    assert job["output"]["urls"][0].split("?")[0].endswith(".mp4")
    assert job["output"]["expires_at"]
    assert job["output"]["expires_at_source"] == "documented"
    assert job["usage"]["video_seconds"] == 6
    assert job["cost_usd"] == pytest.approx(0.72)
    (attempt,) = attempts_of(runtime, job["id"])
    assert (attempt.status, attempt.video_seconds) == ("succeeded", 6)
    assert sim_control.calls("text_to_video.create") == 1
    assert sim_control.calls("tasks.retrieve") >= 1


@pytest.mark.parametrize(
    ("prompt", "error_type", "tasks"),
    [
        ("something forbidden", "content_policy", 1),
        # Runway calls INTERNAL failures worth a retry: the route's attempts are spent first.
        ("please fail", "provider_job_failed", 3),
    ],
)
def test_a_task_that_fails_with_a_code_fails_the_job(
    client, auth, worker, runtime, sim_control, monkeypatch, prompt, error_type, tasks
) -> None:
    sim_control.config(**FAST_ASYNC)
    monkeypatch.setattr("workers.execution.policy.retry_delay_s", lambda attempt, after: 0.01)

    job = run(client, auth, {**RUNWAY, "input": {**RUNWAY["input"], "promptText": prompt}})

    assert (job["status"], job["error"]["type"], job["cost_usd"]) == ("failed", error_type, 0)
    assert sim_control.calls("text_to_video.create") == tasks
    assert [a.status for a in attempts_of(runtime, job["id"])] == ["failed"] * tasks


def test_a_body_runway_refuses_fails_the_job_with_its_issues(client, auth, worker, sim_control):
    job = run(client, auth, {**RUNWAY, "input": {**RUNWAY["input"], "ratio": "1:1"}})

    assert (job["status"], job["error"]["type"]) == ("failed", "bad_request")
    assert "ratio: Invalid option" in job["error"]["message"]


def test_genq_refuses_input_without_a_prompt_at_the_door(client, auth) -> None:
    response = client.post(
        "/v1/jobs", json={**RUNWAY, "input": {"ratio": "1280:720"}}, headers=auth
    )

    assert response.status_code == 422
    assert "promptText, promptImage or both" in response.text


def test_canceling_a_waiting_job_cancels_its_task(client, auth, worker, sim_control) -> None:
    sim_control.config(fixed_duration_s=600)
    job_id = client.post("/v1/jobs", json=RUNWAY, headers=auth).json()["id"]
    job_of(client, auth, job_id, {"waiting"})

    assert client.post(f"/v1/jobs/{job_id}/cancel", headers=auth).status_code == 200

    eventually(lambda: sim_control.calls("tasks.delete"), lambda calls: calls == 1)
    assert client.get(f"/v1/jobs/{job_id}", headers=auth).json()["status"] == "canceled"


def test_openai_videos_fall_back_to_runway(client, auth, routes, worker, sim_control) -> None:
    sim_control.config(**FAST_ASYNC)
    models = {**routes.by_name["openai-video"].models}
    models["sora-2"] = models["sora-2"].model_copy(update={"fallbacks": ("runway/gen4.5",)})
    override(routes, "openai-video", models=models)
    sim_control.faults({"endpoint": "videos.create", "kind": "status", "code": 401})
    body = {"model": "openai-video/sora-2", "input": {"prompt": "waves", "seconds": "12"}}

    job = run(client, auth, body)

    assert (job["status"], job["served_by"]) == ("succeeded", "runway/gen4.5")
    assert job["usage"]["video_seconds"] == 10
