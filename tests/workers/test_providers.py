"""Every wire protocol through the worker against the simulator, each error in its bucket,
and fallbacks from one route to the next."""

import pytest

from schema.jobs import TERMINAL_STATUSES as TERMINAL
from tests.helpers import override
from tests.waiting import eventually
from tests.workers.test_worker import attempts_of, job_of

FAST_ASYNC = {"time_scale": 0.002, "fixed_duration_s": 100}

CHAT = {
    "model": "openai/gpt-4o-mini",
    "input": {"messages": [{"role": "user", "content": "Hello"}], "max_tokens": 16},
}
ANTHROPIC = {
    "model": "anthropic/claude-haiku-4-5",
    "input": {
        "messages": [{"role": "user", "content": "Hello"}],
        "system": "Be brief.",
        "max_tokens": 32,
    },
}
IMAGE = {"model": "openai-images/dall-e-3", "input": {"prompt": "a lighthouse", "n": 1}}
PREDICTION = {
    "model": "replicate/black-forest-labs/flux-schnell",
    "input": {"prompt": "a lighthouse", "num_outputs": 2},
}
VIDEO = {"model": "openai-video/sora-2", "input": {"prompt": "waves", "seconds": "8"}}
FAL_VIDEO = {"model": "fal/fal-ai/veo3/fast", "input": {"prompt": "waves", "duration": "8s"}}

pytestmark = pytest.mark.parametrize("engine", ["postgresql"], indirect=True)


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("workers.execution.policy.retry_delay_s", lambda attempt, after: 0.05)


def run(client, auth, body: dict) -> dict:  # type: ignore[type-arg]
    response = client.post("/v1/jobs", json=body, headers=auth)
    assert response.status_code == 202, response.text
    return job_of(client, auth, response.json()["id"], TERMINAL)


def test_anthropic_messages(client, auth, worker, runtime, sim_control) -> None:
    job = run(client, auth, ANTHROPIC)

    assert job["status"] == "succeeded"
    assert job["output"]["text"]
    assert job["output"]["stop_reason"] in ("end_turn", "max_tokens")
    assert job["usage"]["input_tokens"] > 0 and job["usage"]["output_tokens"] > 0
    assert job["cost_usd"] > 0
    (attempt,) = attempts_of(runtime, job["id"])
    assert attempt.provider_request_id.startswith("req_")


def test_openai_images(client, auth, worker, sim_control) -> None:
    job = run(client, auth, IMAGE)

    assert job["status"] == "succeeded"
    assert job["usage"]["images"] == 1
    assert job["output"]["urls"][0].startswith("http")
    assert job["cost_usd"] == pytest.approx(0.04)


def test_replicate_predictions_are_submitted_and_polled(client, auth, worker, sim_control) -> None:
    sim_control.config(**FAST_ASYNC)

    job = run(client, auth, PREDICTION)

    assert job["status"] == "succeeded"
    assert len(job["output"]["urls"]) == 2
    assert job["usage"]["images"] == 2
    assert job["cost_usd"] == pytest.approx(0.006)
    assert sim_control.calls("predictions.create") == 1
    assert sim_control.calls("predictions.get") >= 1


def test_openai_videos_are_submitted_and_polled(client, auth, worker, runtime, sim_control):
    sim_control.config(**FAST_ASYNC)

    job = run(client, auth, VIDEO)

    assert job["status"] == "succeeded"
    assert job["progress"] == 100
    assert job["output"]["urls"][0].endswith(f"/videos/{job['output']['video_id']}/content")
    assert job["output"]["expires_at"]
    assert job["usage"]["video_seconds"] == 8
    assert job["cost_usd"] == pytest.approx(0.8)
    (attempt,) = attempts_of(runtime, job["id"])
    assert (attempt.status, attempt.video_seconds) == ("succeeded", 8)


def test_fal_videos_are_submitted_and_polled(client, auth, worker, runtime, sim_control):
    sim_control.config(**FAST_ASYNC)

    job = run(client, auth, FAL_VIDEO)

    assert job["status"] == "succeeded"
    assert job["progress"] == 100
    assert job["output"]["urls"][0].endswith(f"/_sim/files/{job['output']['request_id']}.mp4")
    assert job["cost_usd"] == pytest.approx(3.2)
    (attempt,) = attempts_of(runtime, job["id"])
    assert attempt.status == "succeeded"
    assert sim_control.calls("fal.submit") == 1 and sim_control.calls("fal.result") == 1


def test_a_failed_fal_request_fails_the_job_with_fals_error(client, auth, worker, sim_control):
    sim_control.config(**FAST_ASYNC)

    job = run(client, auth, {**FAL_VIDEO, "input": {"prompt": "please fail"}})

    assert (job["status"], job["error"]["type"]) == ("failed", "provider_job_failed")
    assert "runner_server_error" in job["error"]["message"]
    assert job["cost_usd"] == 0


def test_canceling_a_waiting_fal_job_cancels_the_request_at_fal(client, auth, worker, sim_control):
    sim_control.config(time_scale=0.01, fixed_duration_s=300)
    job_id = client.post("/v1/jobs", json=FAL_VIDEO, headers=auth).json()["id"]
    job_of(client, auth, job_id, {"waiting"})

    canceled = client.post(f"/v1/jobs/{job_id}/cancel", headers=auth)

    assert canceled.json()["status"] == "canceled"
    eventually(lambda: sim_control.calls("fal.cancel"), lambda n: n == 1)
    (fal_job,) = sim_control.http.get("/_sim/jobs").json()["data"]
    assert fal_job["status"] == "canceled"


def test_a_failed_async_job_fails_with_the_providers_reason(client, auth, worker, sim_control):
    sim_control.config(**FAST_ASYNC)

    job = run(client, auth, {**VIDEO, "input": {"prompt": "please fail", "seconds": "4"}})

    assert job["status"] == "failed"
    assert job["error"]["type"] == "provider_job_failed"
    assert job["cost_usd"] == 0


@pytest.mark.parametrize(
    ("fault", "error_class", "attempts", "status"),
    [
        ({"kind": "status", "code": 500}, "server_error", 3, "dead_lettered"),
        ({"kind": "status", "code": 503}, "server_error", 3, "dead_lettered"),
        ({"kind": "status", "code": 429, "retry_after": 0}, "rate_limited", 3, "dead_lettered"),
        ({"kind": "reset"}, "connect_error", 3, "dead_lettered"),
        ({"kind": "malformed_json"}, "invalid_response", 3, "dead_lettered"),
        ({"kind": "timeout", "delay_s": 3}, "timeout", 3, "dead_lettered"),
        ({"kind": "status", "code": 401}, "auth_error", 1, "dead_lettered"),
        ({"kind": "status", "code": 403}, "auth_error", 1, "dead_lettered"),
        ({"kind": "status", "code": 404}, "not_found", 1, "dead_lettered"),
        ({"kind": "status", "code": 400}, "bad_request", 1, "failed"),
        ({"kind": "status", "code": 422}, "bad_request", 1, "failed"),
    ],
    ids=lambda v: v if isinstance(v, str) and not v.endswith("ed") else None,
)
def test_each_error_lands_in_its_bucket(
    client, auth, routes, worker, runtime, sim_control, fault, error_class, attempts, status
) -> None:
    override(routes, "openai", timeout_s=1)
    sim_control.faults({**fault, "endpoint": "chat.completions"})

    job = run(client, auth, CHAT)

    assert job["status"] == status
    assert job["error"]["type"] == error_class
    assert [a.error_class for a in attempts_of(runtime, job["id"])] == [error_class] * attempts


def test_anthropic_529_overloaded_is_retried(client, auth, worker, runtime, sim_control) -> None:
    sim_control.faults({"endpoint": "messages", "kind": "status", "code": 529, "count": 2})

    job = run(client, auth, ANTHROPIC)

    assert job["status"] == "succeeded"
    statuses = [(a.status, a.error_class) for a in attempts_of(runtime, job["id"])]
    assert statuses == [("failed", "overloaded"), ("failed", "overloaded"), ("succeeded", None)]


def test_content_policy_is_permanent(client, auth, worker, runtime, sim_control) -> None:
    job = run(client, auth, {**IMAGE, "input": {"prompt": "something forbidden"}})

    assert job["status"] == "failed"
    assert job["error"]["type"] == "content_policy"
    assert len(attempts_of(runtime, job["id"])) == 1


def test_exhausted_route_falls_back_to_the_next(client, auth, routes, worker, runtime, sim_control):
    spec = routes.by_name["openai"].models["gpt-4o-mini"]
    models = {**routes.by_name["openai"].models}
    models["gpt-4o-mini"] = spec.model_copy(update={"fallbacks": ("anthropic/claude-haiku-4-5",)})
    override(routes, "openai", models=models, max_attempts=2)
    sim_control.faults({"endpoint": "chat.completions", "kind": "status", "code": 503})

    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]

    job = run(client, auth, {**CHAT, "input": {**CHAT["input"], "messages": messages}})

    assert job["status"] == "succeeded"
    assert job["served_by"] == "anthropic/claude-haiku-4-5"
    assert job["model"] == "openai/gpt-4o-mini"
    attempts = attempts_of(runtime, job["id"])
    assert [(a.route, a.status) for a in attempts] == [
        ("openai", "failed"),
        ("openai", "failed"),
        ("anthropic", "succeeded"),
    ]
    assert sim_control.calls("messages") == 1


def test_a_fallback_whose_route_lacks_its_key_is_skipped(
    client, auth, routes, worker, runtime, sim_control
) -> None:
    spec = routes.by_name["openai"].models["gpt-4o-mini"]
    models = {**routes.by_name["openai"].models}
    models["gpt-4o-mini"] = spec.model_copy(
        update={"fallbacks": ("anthropic/claude-haiku-4-5", "openai/gpt-4o")}
    )
    override(routes, "openai", models=models, max_attempts=1)
    override(routes, "anthropic", api_key_env="GENQ_TEST_UNSET_KEY")
    sim_control.faults({"endpoint": "chat.completions", "kind": "status", "code": 503, "count": 1})

    job = run(client, auth, CHAT)

    assert (job["status"], job["served_by"]) == ("succeeded", "openai/gpt-4o")
    attempts = attempts_of(runtime, job["id"])
    assert [(a.route, a.model, a.status) for a in attempts] == [
        ("openai", "openai/gpt-4o-mini", "failed"),
        ("openai", "openai/gpt-4o", "succeeded"),
    ]
    assert sim_control.calls("messages") == 0


def test_with_every_fallback_unkeyed_the_job_ends_on_its_own_error(
    client, auth, routes, worker, sim_control
) -> None:
    spec = routes.by_name["openai"].models["gpt-4o-mini"]
    models = {**routes.by_name["openai"].models}
    models["gpt-4o-mini"] = spec.model_copy(update={"fallbacks": ("anthropic/claude-haiku-4-5",)})
    override(routes, "openai", models=models, max_attempts=1)
    override(routes, "anthropic", api_key_env="GENQ_TEST_UNSET_KEY")
    sim_control.faults({"endpoint": "chat.completions", "kind": "status", "code": 502})

    job = run(client, auth, CHAT)

    assert (job["status"], job["error"]["type"]) == ("dead_lettered", "server_error")
    assert sim_control.calls("messages") == 0


def test_image_fallback_crosses_to_an_async_protocol(client, auth, routes, worker, sim_control):
    sim_control.config(**FAST_ASYNC)
    models = {**routes.by_name["openai-images"].models}
    models["dall-e-3"] = models["dall-e-3"].model_copy(
        update={"fallbacks": ("replicate/black-forest-labs/flux-schnell",)}
    )
    override(routes, "openai-images", models=models)
    sim_control.faults({"endpoint": "images.generations", "kind": "status", "code": 401})

    job = run(client, auth, IMAGE)

    assert job["status"] == "succeeded"
    assert job["served_by"] == "replicate/black-forest-labs/flux-schnell"
    assert job["usage"]["images"] == 1


def test_no_fallback_left_fails_the_job(client, auth, routes, worker, sim_control) -> None:
    override(routes, "openai", max_attempts=1)
    sim_control.faults({"endpoint": "chat.completions", "kind": "status", "code": 502})

    job = run(client, auth, CHAT)

    assert (job["status"], job["error"]["type"], job["served_by"]) == (
        "dead_lettered",
        "server_error",
        None,
    )
