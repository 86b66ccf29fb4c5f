"""The Runway tasks adapter against a simulator on a fake clock: each task status, output
URL expiry, failure codes, cancel, and Runway's error answers in genq's taxonomy."""

import time
from collections.abc import Iterator

import httpx
import pytest

from schema.routes import Route
from simulator import SimConfig, SimServer
from tests.helpers import FakeClock
from workers.providers import AsyncState, ErrorClass, ProviderError, adapter_for
from workers.providers.runway_tasks import THROTTLED_POLL_S, RunwayTasks, task_failure

KEY = "key_" + "a" * 128
TEXT = {"promptText": "a lighthouse at dusk", "ratio": "1280:720", "duration": 5}


@pytest.fixture(scope="module")
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(scope="module")
def server(clock: FakeClock) -> Iterator[SimServer]:
    with SimServer(SimConfig(fixed_duration_s=100, api_key=KEY), clock=clock) as server:
        yield server


@pytest.fixture
def sim(server: SimServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url) as sim:
        saved = sim.get("/_sim/config").json()
        sim.post("/_sim/reset").raise_for_status()
        yield sim
        sim.post("/_sim/config", json=saved).raise_for_status()
        sim.delete("/_sim/faults").raise_for_status()


@pytest.fixture
def runway(server: SimServer, sim: httpx.Client, monkeypatch: pytest.MonkeyPatch) -> RunwayTasks:
    monkeypatch.setenv("GENQ_TEST_RUNWAY_KEY", KEY)
    route = Route(
        name="runway",
        protocol="runway-tasks",
        base_url=server.url,
        api_key_env="GENQ_TEST_RUNWAY_KEY",
        models={"gen4.5": {"per_video_second": 0.12}},
    )
    with httpx.Client(timeout=5) as http:
        yield adapter_for(route, http)  # type: ignore[misc]


def test_a_task_runs_through_pending_running_and_succeeded(
    runway: RunwayTasks, clock: FakeClock
) -> None:
    submitted = runway.submit("gen4.5", TEXT)
    pending = runway.poll(submitted.provider_job_id)
    clock.advance(55)
    running = runway.poll(submitted.provider_job_id)
    clock.advance(45)
    done = runway.poll(submitted.provider_job_id)

    assert submitted.provider_job_id.endswith("@5s")
    assert (submitted.state, submitted.progress, submitted.http_status) == (
        AsyncState.RUNNING,
        None,
        200,
    )
    assert (pending.state, pending.progress, pending.poll_after_s) == (
        AsyncState.RUNNING,
        None,
        None,
    )
    assert (running.state, running.progress) == (AsyncState.RUNNING, 50.0)
    assert (submitted.queued, pending.queued, running.queued) == (True, True, False)
    assert done.state == AsyncState.SUCCEEDED
    assert done.result.usage == {"video_seconds": 5.0}
    output = done.result.output
    assert output["task_id"] == submitted.provider_job_id.partition("@")[0]
    assert output["credits"] == 60
    assert output["expires_at_source"] == "documented"
    assert abs(output["expires_at"] - (time.time() + 86_400)) < 60
    assert httpx.get(output["urls"][0]).status_code == 200


def test_an_expired_output_url_is_refused_and_a_new_poll_renews_it(
    runway: RunwayTasks, clock: FakeClock
) -> None:
    submitted = runway.submit("gen4.5", TEXT)
    clock.advance(100)
    (first,) = runway.poll(submitted.provider_job_id).result.output["urls"]
    clock.advance(86_400)

    assert httpx.get(first).status_code == 403
    (renewed,) = runway.poll(submitted.provider_job_id).result.output["urls"]
    assert httpx.get(renewed).status_code == 200


def test_a_throttled_task_has_not_started_and_asks_for_a_slower_poll(
    runway: RunwayTasks, sim: httpx.Client
) -> None:
    sim.post("/_sim/config", json={"runway_concurrency": 1}).raise_for_status()
    runway.submit("gen4.5", TEXT)
    throttled = runway.poll(runway.submit("gen4.5", TEXT).provider_job_id)

    assert (throttled.state, throttled.progress, throttled.poll_after_s) == (
        AsyncState.RUNNING,
        None,
        THROTTLED_POLL_S,
    )
    assert throttled.queued


def test_image_input_goes_to_image_to_video(runway: RunwayTasks, sim: httpx.Client) -> None:
    runway.submit("gen4.5", {**TEXT, "promptImage": "https://example.com/a.png"})

    calls = sim.get("/_sim/stats").json()["calls"]
    assert calls == {"image_to_video.create": 1}


@pytest.mark.parametrize(
    ("input", "error_class", "retryable", "code"),
    [
        ({**TEXT, "promptText": "forbidden"}, ErrorClass.CONTENT_POLICY, False, "SAFETY.INPUT"),
        ({**TEXT, "promptText": "fail"}, ErrorClass.PROVIDER_JOB_FAILED, True, "INTERNAL."),
        (
            {**TEXT, "promptImage": "https://example.com/invalid.png"},
            ErrorClass.BAD_REQUEST,
            False,
            "ASSET.INVALID",
        ),
    ],
)
def test_a_failed_task_maps_its_failure_code(
    runway: RunwayTasks, clock: FakeClock, input, error_class, retryable, code
) -> None:
    submitted = runway.submit("gen4.5", input)
    clock.advance(100)
    failed = runway.poll(submitted.provider_job_id)

    assert failed.state == AsyncState.FAILED
    assert (failed.error.error_class, failed.error.retryable) == (error_class, retryable)
    assert code in failed.error.message


@pytest.mark.parametrize(
    ("code", "error_class", "retryable"),
    [
        ("INPUT_PREPROCESSING.SAFETY.TEXT", ErrorClass.CONTENT_POLICY, False),
        ("SAFETY.OUTPUT.VIDEO", ErrorClass.CONTENT_POLICY, False),
        ("INPUT_PREPROCESSING.INTERNAL", ErrorClass.PROVIDER_JOB_FAILED, True),
        ("INPUT.INVALID", ErrorClass.BAD_REQUEST, False),
        (None, ErrorClass.PROVIDER_JOB_FAILED, False),
    ],
)
def test_failure_codes_in_the_taxonomy(code, error_class, retryable) -> None:
    error = task_failure(code, "reason", None)

    assert (error.error_class, error.retryable) == (error_class, retryable)


def test_cancel_deletes_the_task(runway: RunwayTasks, sim: httpx.Client) -> None:
    submitted = runway.submit("gen4.5", TEXT)
    runway.cancel(submitted.provider_job_id)

    canceled = runway.poll(submitted.provider_job_id)
    assert (canceled.state, canceled.error) == (AsyncState.CANCELED, None)
    assert sim.get("/_sim/stats").json()["calls"]["tasks.delete"] == 1


def test_a_body_runway_refuses_is_a_bad_request_naming_each_issue(runway: RunwayTasks) -> None:
    with pytest.raises(ProviderError) as refused:
        runway.submit("gen4.5", {**TEXT, "ratio": "1:1", "duration": 11})

    error = refused.value
    assert (error.error_class, error.retryable, error.http_status) == (
        ErrorClass.BAD_REQUEST,
        False,
        400,
    )
    assert error.message.startswith("HTTP 400: Validation of body failed; ratio: Invalid option")
    assert "duration: Too big" in error.message


@pytest.mark.parametrize(
    ("fault", "error_class", "retryable", "retry_after_s"),
    [
        ({"code": 429, "retry_after": 7}, ErrorClass.RATE_LIMITED, True, 7.0),
        ({"code": 502}, ErrorClass.SERVER, True, None),
        ({"code": 503}, ErrorClass.SERVER, True, None),
        ({"code": 401}, ErrorClass.AUTH, False, None),
    ],
)
def test_error_answers_in_the_taxonomy(
    runway: RunwayTasks, sim: httpx.Client, fault, error_class, retryable, retry_after_s
) -> None:
    sim.post("/_sim/faults", json=[{"endpoint": "*", "kind": "status", **fault}])

    with pytest.raises(ProviderError) as refused:
        runway.submit("gen4.5", TEXT)

    error = refused.value
    assert (error.error_class, error.retryable, error.retry_after_s) == (
        error_class,
        retryable,
        retry_after_s,
    )
    assert error.message.startswith(f"HTTP {fault['code']}: ")


def test_a_wrong_key_and_an_unknown_task(
    runway: RunwayTasks, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ProviderError) as missing:
        runway.poll("00000000-0000-0000-0000-000000000000@5s")
    monkeypatch.setenv("GENQ_TEST_RUNWAY_KEY", "key_wrong")
    with pytest.raises(ProviderError) as refused:
        runway.submit("gen4.5", TEXT)

    assert (missing.value.error_class, missing.value.retryable) == (ErrorClass.NOT_FOUND, False)
    assert "Task not found" in missing.value.message
    assert (refused.value.error_class, refused.value.retryable) == (ErrorClass.AUTH, False)
    assert "key_wrong" not in refused.value.message
