"""The simulator's Runway task API, driven through the official ``runwayml`` SDK.

Most tests move a fake clock instead of waiting; one runs a scaled-down task in real
time through the SDK's own ``wait_for_task_output``.
"""

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import runwayml
from runwayml.lib import polling

from simulator import SimConfig, SimServer
from tests.helpers import FakeClock

KEY = "key_" + "0" * 128
HEADERS = {"Authorization": f"Bearer {KEY}", "X-Runway-Version": "2024-11-06"}
TEXT = {"model": "gen4.5", "prompt_text": "a lighthouse at dusk", "ratio": "1280:720"}


@pytest.fixture(scope="module")
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(scope="module")
def server(clock: FakeClock) -> Iterator[SimServer]:
    with SimServer(SimConfig(fixed_duration_s=100), clock=clock) as server:
        yield server


@pytest.fixture(scope="module")
def http(server: SimServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, headers=HEADERS) as http:
        yield http


@pytest.fixture
def sdk(server: SimServer, http: httpx.Client) -> Iterator[runwayml.RunwayML]:
    """The SDK pointed at the shared server, whose jobs, counters and config start afresh."""
    saved = http.get("/_sim/config").json()
    http.post("/_sim/reset").raise_for_status()
    with runwayml.RunwayML(api_key=KEY, base_url=server.url, max_retries=0) as sdk:
        yield sdk
    http.post("/_sim/config", json=saved).raise_for_status()


def test_a_task_is_pending_then_running_with_progress_then_succeeds(
    sdk: runwayml.RunwayML, http: httpx.Client, clock: FakeClock
) -> None:
    created = sdk.text_to_video.create(**TEXT, duration=5, seed=7)
    assert re.fullmatch(r"[0-9a-f-]{36}", created.id)
    assert created.estimated_cost.credits == 60

    pending = sdk.tasks.retrieve(created.id)
    assert pending.status == "PENDING"
    assert not hasattr(pending, "progress")
    clock.advance(55)
    running = sdk.tasks.retrieve(created.id)
    assert running.status == "RUNNING"
    assert running.progress == 0.5
    clock.advance(45)
    done = sdk.tasks.retrieve(created.id)

    assert done.status == "SUCCEEDED"
    assert done.cost.credits == 60
    (url,) = done.output
    video = httpx.get(url)
    assert (video.status_code, video.headers["content-type"]) == (200, "video/mp4")


def test_output_urls_expire_and_a_fresh_read_issues_new_ones(
    sdk: runwayml.RunwayML, clock: FakeClock
) -> None:
    created = sdk.text_to_video.create(**TEXT, duration=5)
    clock.advance(100)
    (first,) = sdk.tasks.retrieve(created.id).output
    clock.advance(86_400)

    assert httpx.get(first).status_code == 403
    (fresh,) = sdk.tasks.retrieve(created.id).output
    assert httpx.get(fresh).status_code == 200
    assert httpx.get(fresh.replace(created.id, "0" * 36)).status_code == 403


@pytest.mark.parametrize(
    ("prompt", "code"),
    [
        ("something forbidden", "SAFETY.INPUT.TEXT"),
        ("please fail", "INTERNAL.BAD_OUTPUT.CODE01"),
    ],
)
def test_a_task_fails_with_a_failure_code(
    sdk: runwayml.RunwayML, clock: FakeClock, prompt: str, code: str
) -> None:
    created = sdk.text_to_video.create(**{**TEXT, "prompt_text": prompt}, duration=5)
    clock.advance(100)
    failed = sdk.tasks.retrieve(created.id)

    assert failed.status == "FAILED"
    assert failed.failure_code == code
    assert failed.failure
    assert failed.cost.credits == 0


def test_an_unreadable_image_fails_with_asset_invalid(
    sdk: runwayml.RunwayML, clock: FakeClock
) -> None:
    created = sdk.image_to_video.create(
        model="gen4_turbo", prompt_image="https://example.com/invalid.png", ratio="1280:720"
    )
    clock.advance(100)

    assert sdk.tasks.retrieve(created.id).failure_code == "ASSET.INVALID"


def test_image_to_video_takes_a_list_of_frames(sdk: runwayml.RunwayML) -> None:
    created = sdk.image_to_video.create(
        model="gen4.5",
        prompt_image=[{"uri": "https://example.com/a.png", "position": "first"}],
        prompt_text="waves",
        ratio="1280:720",
        duration=4,
    )

    assert sdk.tasks.retrieve(created.id).status == "PENDING"


def test_delete_cancels_an_unfinished_task_and_deletes_a_finished_one(
    sdk: runwayml.RunwayML, http: httpx.Client, clock: FakeClock
) -> None:
    queued = sdk.text_to_video.create(**TEXT, duration=5)
    finished = sdk.text_to_video.create(**TEXT, duration=5)
    clock.advance(100)
    running = sdk.text_to_video.create(**TEXT, duration=5)
    clock.advance(50)
    late = sdk.text_to_video.create(**TEXT, duration=5)

    assert http.delete(f"/v1/tasks/{late.id}").status_code == 204
    sdk.tasks.delete(running.id)
    sdk.tasks.delete(finished.id)

    assert sdk.tasks.retrieve(late.id).cost.credits == 0
    canceled = sdk.tasks.retrieve(running.id)
    assert (canceled.status, canceled.cost.credits) == ("CANCELLED", 60)
    deleted = sdk.tasks.retrieve(finished.id)
    assert (deleted.status, deleted.cost.credits) == ("CANCELLED", 60)
    assert sdk.tasks.retrieve(queued.id).status == "SUCCEEDED"
    assert http.get(f"/_sim/jobs/{late.id}").json()["status"] == "canceled"


def test_tasks_past_the_accounts_concurrency_are_throttled(
    sdk: runwayml.RunwayML, http: httpx.Client, clock: FakeClock
) -> None:
    http.post("/_sim/config", json={"runway_concurrency": 1}).raise_for_status()
    first = sdk.text_to_video.create(**TEXT, duration=5)
    second = sdk.text_to_video.create(**TEXT, duration=5)

    assert sdk.tasks.retrieve(second.id).status == "THROTTLED"
    clock.advance(100)
    assert sdk.tasks.retrieve(first.id).status == "SUCCEEDED"
    assert sdk.tasks.retrieve(second.id).status == "PENDING"
    clock.advance(100)
    assert sdk.tasks.retrieve(second.id).status == "SUCCEEDED"


@pytest.mark.parametrize(
    ("body", "issue"),
    [
        (
            {"model": "gen4.5", "promptText": "x", "ratio": "1280:720"},
            {"code": "invalid_type", "path": ["duration"], "expected": "int"},
        ),
        (
            {"model": "gen4.5", "promptText": "x", "ratio": "1:1", "duration": 5},
            {"code": "invalid_value", "path": ["ratio"]},
        ),
        (
            {"model": "gen4.5", "promptText": "x", "ratio": "1280:720", "duration": 11},
            {"code": "too_big", "path": ["duration"], "maximum": 10},
        ),
        (
            {"model": "gen9", "promptText": "x", "ratio": "1280:720"},
            {"code": "invalid_union", "path": ["model"], "discriminator": "model"},
        ),
        (
            {"model": "veo3.1", "ratio": "1280:720"},
            {"code": "invalid_type", "path": ["promptText"], "expected": "string"},
        ),
    ],
)
def test_invalid_bodies_fail_validation(
    sdk: runwayml.RunwayML, http: httpx.Client, body: dict[str, Any], issue: dict[str, Any]
) -> None:
    response = http.post("/v1/text_to_video", json=body)

    assert response.status_code == 400
    answer = response.json()
    assert answer["error"] == "Validation of body failed"
    assert answer["docUrl"].startswith("https://docs.dev.runwayml.com")
    (found,) = answer["issues"]
    assert found.items() >= issue.items()
    with pytest.raises(runwayml.BadRequestError):
        sdk.post("/v1/text_to_video", body=body, cast_to=object)


def test_an_image_must_be_an_https_url(http: httpx.Client, sdk: runwayml.RunwayML) -> None:
    body = {"model": "gen4_turbo", "promptImage": "http://example.com/a.png", "ratio": "960:960"}
    response = http.post("/v1/image_to_video", json=body)

    assert response.status_code == 400
    assert response.json()["issues"][0]["path"] == ["promptImage"]


def test_key_version_and_task_errors(
    server: SimServer, http: httpx.Client, sdk: runwayml.RunwayML
) -> None:
    http.post("/_sim/config", json={"api_key": KEY}).raise_for_status()
    with pytest.raises(runwayml.NotFoundError) as missing:
        sdk.tasks.retrieve("00000000-0000-0000-0000-000000000000")
    assert missing.value.body == {"error": "Task not found."}
    with pytest.raises(runwayml.AuthenticationError):
        sdk.with_options(api_key="key_wrong").tasks.retrieve("x")
    unversioned = httpx.get(
        f"{server.url}/v1/tasks/x", headers={"Authorization": HEADERS["Authorization"]}
    )
    assert unversioned.status_code == 400
    assert "X-Runway-Version" in unversioned.json()["error"]
    with pytest.raises(runwayml.BadRequestError):
        sdk.with_options(runway_version="2020-01-01").tasks.retrieve("x")


def test_a_429_carries_retry_after(sdk: runwayml.RunwayML, http: httpx.Client) -> None:
    http.post("/_sim/faults", json=[{"endpoint": "text_to_video.create", "kind": "status",
                                     "code": 429, "retry_after": 3, "count": 1}])  # fmt: skip

    with pytest.raises(runwayml.RateLimitError) as limited:
        sdk.text_to_video.create(**TEXT, duration=5)

    assert limited.value.response.headers["retry-after"] == "3"
    assert limited.value.body == {"error": "Too Many Requests"}


def test_the_sdk_waits_for_a_scaled_down_task(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(polling, "POLL_TIME", 0.02)
    monkeypatch.setattr(polling, "POLL_JITTER", 0)
    config = SimConfig(fixed_duration_s=100, time_scale=0.001)
    with SimServer(config) as server, runwayml.RunwayML(api_key=KEY, base_url=server.url) as sdk:
        done = sdk.text_to_video.create(**TEXT, duration=5).wait_for_task_output(timeout=10)
        failing = sdk.text_to_video.create(**{**TEXT, "prompt_text": "fail"}, duration=5)
        with pytest.raises(polling.TaskFailedError) as failed:
            failing.wait_for_task_output(timeout=10)

    assert done.status == "SUCCEEDED"
    assert done.output[0].endswith(".mp4", 0, done.output[0].index("?"))
    assert failed.value.task_details.failure_code == "INTERNAL.BAD_OUTPUT.CODE01"
