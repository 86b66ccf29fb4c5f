"""The google-veo adapter against the simulator, and Veo jobs through the worker: submit,
polls to done, Google's error shapes, failed and filtered operations, cancel, fallback."""

import logging

import httpx
import pytest

from schema.inputs import ValidationError, validate_input
from schema.pricing import max_cost_micros
from schema.routes import ModelSpec, Protocol
from tests.helpers import override
from tests.waiting import eventually
from tests.workers.test_providers import FAST_ASYNC, VIDEO, run
from tests.workers.test_worker import attempts_of, job_of
from workers.providers import AsyncState, ErrorClass, ProviderError, adapter_for
from workers.providers.translate import translate

MODEL = "veo-3.0-generate-001"
VEO = {
    "model": f"veo/{MODEL}",
    "input": {
        "instances": [{"prompt": "a lighthouse"}],
        "parameters": {"durationSeconds": 6, "sampleCount": 2, "storageUri": "gs://b/out"},
    },
}


@pytest.fixture
def veo(routes):
    with httpx.Client(timeout=5) as client:
        yield adapter_for(routes.by_name["veo"], client)


def finish(veo, provider_job_id: str):
    return eventually(lambda: veo.poll(provider_job_id), lambda p: p.state != AsyncState.RUNNING)


def test_a_video_is_submitted_and_polled_to_its_gcs_uris(veo, sim_control) -> None:
    sim_control.config(**FAST_ASYNC)

    submitted = veo.submit(MODEL, VEO["input"])
    done = finish(veo, submitted.provider_job_id)

    assert submitted.state == AsyncState.RUNNING
    assert (submitted.progress, submitted.poll_after_s) == (None, None)
    assert submitted.provider_job_id.endswith("#seconds=6")
    assert "/publishers/google/models/veo-3.0-generate-001/operations/" in done.provider_job_id
    assert done.state == AsyncState.SUCCEEDED
    urls = done.result.output["urls"]
    assert len(urls) == 2 and all(u.startswith("gs://b/out/") for u in urls)
    assert done.result.usage == {"video_seconds": 12.0}


def test_inline_videos_are_kept_with_their_mime_type(veo, sim_control) -> None:
    sim_control.config(**FAST_ASYNC)

    submitted = veo.submit(MODEL, {"instances": [{"prompt": "waves"}]})
    done = finish(veo, submitted.provider_job_id)

    (video,) = done.result.output["videos"]
    assert video["mimeType"] == "video/mp4" and video["bytesBase64Encoded"]
    assert done.result.output["urls"] == []
    assert done.result.usage == {"video_seconds": 8.0}


@pytest.mark.parametrize(
    ("code", "error_class", "retryable"),
    [
        (429, ErrorClass.RATE_LIMITED, True),
        (500, ErrorClass.SERVER, True),
        (503, ErrorClass.SERVER, True),
        (504, ErrorClass.SERVER, True),
        (400, ErrorClass.BAD_REQUEST, False),
        (403, ErrorClass.AUTH, False),
        (404, ErrorClass.NOT_FOUND, False),
    ],
)
def test_googles_error_statuses_land_in_their_buckets(
    veo, sim_control, code, error_class, retryable
) -> None:
    sim_control.faults({"endpoint": "veo.generate", "kind": "status", "code": code})

    with pytest.raises(ProviderError) as refused:
        veo.submit(MODEL, VEO["input"])

    assert (refused.value.error_class, refused.value.retryable) == (error_class, retryable)
    assert refused.value.http_status == code


def test_over_the_quota_is_rate_limited_with_googles_message(veo, sim_control) -> None:
    sim_control.config(rpm_limit=1)
    veo.submit(MODEL, VEO["input"])

    with pytest.raises(ProviderError) as refused:
        veo.submit(MODEL, VEO["input"])

    assert (refused.value.error_class, refused.value.retryable) == (ErrorClass.RATE_LIMITED, True)
    assert "Quota exceeded" in refused.value.message


def test_an_unknown_key_is_an_auth_error_not_a_bad_request(veo, sim_control) -> None:
    sim_control.config(api_key="AQ.the-right-one")

    with pytest.raises(ProviderError) as refused:
        veo.submit(MODEL, VEO["input"])

    assert (refused.value.error_class, refused.value.retryable) == (ErrorClass.AUTH, False)
    assert "sk-genq-test" not in refused.value.message


@pytest.mark.parametrize(
    ("prompt", "error_class"),
    [("please fail", ErrorClass.SERVER), ("something forbidden", ErrorClass.CONTENT_POLICY)],
)
def test_an_operation_that_ends_without_videos_fails(veo, sim_control, prompt, error_class):
    sim_control.config(**FAST_ASYNC)

    submitted = veo.submit(MODEL, {"instances": [{"prompt": prompt}]})
    done = finish(veo, submitted.provider_job_id)

    assert done.state == AsyncState.FAILED
    assert done.error.error_class == error_class
    assert done.result is None


def test_cancel_sends_nothing_and_says_so(veo, sim_control, caplog) -> None:
    submitted = veo.submit(MODEL, VEO["input"])
    calls = sim_control.calls("veo.generate") + sim_control.calls("veo.fetch")

    with caplog.at_level(logging.INFO, logger="workers.providers.google_veo"):
        veo.cancel(submitted.provider_job_id)

    assert sim_control.calls("veo.generate") + sim_control.calls("veo.fetch") == calls
    assert "cannot cancel" in caplog.text
    assert veo.poll(submitted.provider_job_id).state == AsyncState.RUNNING


def test_inputs_are_checked_and_priced_per_video_second() -> None:
    spec = ModelSpec(per_video_second=0.4)
    for bad in (
        {"instances": []},
        {"instances": [{"negativePrompt": "x"}]},
        {"instances": [{"prompt": "x"}], "parameters": {"durationSeconds": 12}},
        {"instances": [{"prompt": "x"}], "extra": True},
    ):
        with pytest.raises(ValidationError):
            validate_input(Protocol.GOOGLE_VEO, bad)

    assert max_cost_micros(Protocol.GOOGLE_VEO, spec, VEO["input"]) >= 4_800_000
    assert max_cost_micros(Protocol.GOOGLE_VEO, spec, {"instances": [{"prompt": "x"}]}) >= 3_200_000


def test_video_inputs_cross_between_openai_and_veo() -> None:
    spec = ModelSpec()
    veo_input = translate(
        Protocol.OPENAI_VIDEOS,
        Protocol.GOOGLE_VEO,
        {"prompt": "waves", "seconds": "12", "size": "720x1280"},
        spec,
    )
    back = translate(Protocol.GOOGLE_VEO, Protocol.OPENAI_VIDEOS, veo_input, spec)

    assert veo_input == {
        "instances": [{"prompt": "waves"}],
        "parameters": {"durationSeconds": 8, "aspectRatio": "9:16"},
    }
    assert back == {"prompt": "waves", "seconds": "8", "size": "720x1280"}


pg = pytest.mark.parametrize("engine", ["postgresql"], indirect=True)


@pg
def test_a_veo_job_runs_through_the_worker(client, auth, worker, runtime, sim_control) -> None:
    sim_control.config(**FAST_ASYNC)

    job = run(client, auth, VEO)

    assert job["status"] == "succeeded"
    assert len(job["output"]["urls"]) == 2
    assert job["usage"]["video_seconds"] == 12
    assert job["cost_usd"] == pytest.approx(4.8)
    (attempt,) = attempts_of(runtime, job["id"])
    assert (attempt.status, attempt.video_seconds) == ("succeeded", 12)
    assert sim_control.calls("veo.generate") == 1
    assert sim_control.calls("veo.fetch") >= 1


@pg
@pytest.mark.parametrize(
    ("prompt", "status", "error_type"),
    [
        ("please fail", "dead_lettered", "server_error"),
        ("something forbidden", "failed", "content_policy"),
    ],
)
def test_a_veo_job_whose_operation_fails(
    client, auth, worker, sim_control, prompt, status, error_type
) -> None:
    sim_control.config(**FAST_ASYNC)

    job = run(client, auth, {**VEO, "input": {"instances": [{"prompt": prompt}]}})

    assert (job["status"], job["error"]["type"]) == (status, error_type)
    assert job["cost_usd"] == 0


@pg
def test_a_429_at_submit_is_retried(client, auth, worker, runtime, sim_control) -> None:
    sim_control.config(**FAST_ASYNC)
    sim_control.faults({"endpoint": "veo.generate", "kind": "status", "code": 429, "count": 2})

    job = run(client, auth, VEO)

    assert job["status"] == "succeeded"
    classes = [a.error_class for a in attempts_of(runtime, job["id"])]
    assert classes == ["rate_limited", "rate_limited", None]


@pg
def test_a_canceled_veo_job_stops_polling_while_veo_runs_on(
    client, auth, worker, sim, sim_control, caplog
) -> None:
    caplog.set_level(logging.INFO, logger="workers.providers.google_veo")
    sim_control.config(fixed_duration_s=600)
    job_id = client.post("/v1/jobs", json=VEO, headers=auth).json()["id"]
    job_of(client, auth, job_id, {"waiting"})

    canceled = client.post(f"/v1/jobs/{job_id}/cancel", headers=auth)

    assert canceled.json()["status"] == "canceled"
    eventually(lambda: caplog.text, lambda text: "cannot cancel" in text)
    (operation,) = httpx.get(f"{sim.url}/_sim/jobs").json()["data"]
    assert operation["canceled_at"] is None


@pg
def test_a_video_job_falls_back_from_openai_to_veo(client, auth, routes, worker, sim_control):
    sim_control.config(**FAST_ASYNC)
    models = {**routes.by_name["openai-video"].models}
    models["sora-2"] = models["sora-2"].model_copy(update={"fallbacks": (f"veo/{MODEL}",)})
    override(routes, "openai-video", models=models)
    sim_control.faults({"endpoint": "videos.create", "kind": "status", "code": 401})

    job = run(client, auth, VIDEO)

    assert (job["status"], job["served_by"]) == ("succeeded", f"veo/{MODEL}")
    assert job["usage"]["video_seconds"] == 8
