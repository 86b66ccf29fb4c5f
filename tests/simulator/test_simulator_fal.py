"""The simulator's fal queue, driven with the official `fal-client` SDK and over plain HTTP.

`fal-client` builds its queue URLs from ``QUEUE_URL_FORMAT`` (``https://{FAL_QUEUE_RUN_HOST}/``,
read once at import); the SDK tests monkeypatch that module constant of ``fal_client.client``
to the simulator's ``/fal/`` root. Everything else the SDK does is unchanged.
"""

from collections.abc import Iterator
from typing import Any

import fal_client
import httpx
import pytest
from fal_client.client import Completed, FalClientHTTPError, InProgress, Queued

from simulator import SimConfig, SimServer
from tests.helpers import FakeClock

APP = "fal-ai/veo3/fast"
ROOT = "fal-ai/veo3"


@pytest.fixture(scope="module")
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(scope="module")
def server(clock: FakeClock) -> Iterator[SimServer]:
    with SimServer(SimConfig(fixed_duration_s=100), clock=clock) as server:
        yield server


@pytest.fixture
def api(server: SimServer) -> Iterator[httpx.Client]:
    """A client of the simulator's fal queue host, whose counters and jobs start afresh."""
    with httpx.Client(base_url=f"{server.url}/fal", headers={"Authorization": "Key k"}) as api:
        api.post(f"{server.url}/_sim/reset").raise_for_status()
        yield api


@pytest.fixture(scope="module")
def live() -> Iterator[SimServer]:
    """A simulator on the real clock whose jobs take 0.2 s, for the SDK's own polling."""
    with SimServer(SimConfig(fixed_duration_s=100, time_scale=0.002)) as server:
        yield server


@pytest.fixture
def sdk(live: SimServer, monkeypatch: pytest.MonkeyPatch) -> fal_client.SyncClient:
    monkeypatch.setattr(fal_client.client, "QUEUE_URL_FORMAT", f"{live.url}/fal/")
    return fal_client.SyncClient(key="fal-sim-key")


def submit(api: httpx.Client, input: dict[str, Any], app: str = APP) -> dict[str, Any]:
    response = api.post(f"/{app}", json=input)
    assert response.status_code == 200, response.text
    return response.json()


def test_the_sdk_runs_a_video_request_to_its_result(sdk: fal_client.SyncClient) -> None:
    handle = sdk.submit(APP, arguments={"prompt": "waves at dusk", "duration": "8s"})

    assert isinstance(handle.status(), Queued | InProgress | Completed)
    result = handle.get()
    status = sdk.status(APP, handle.request_id, with_logs=True)

    assert handle.status_url.endswith(f"/fal/{ROOT}/requests/{handle.request_id}/status")
    assert result["video"]["content_type"] == "video/mp4"
    assert httpx.get(result["video"]["url"]).content[4:8] == b"ftyp"
    assert isinstance(status, Completed) and status.error is None
    assert status.logs[-1]["message"] == "Generating video: 100%"
    assert sdk.result(APP, handle.request_id) == result


def test_the_sdk_sees_a_failed_request_and_its_error_type(sdk: fal_client.SyncClient) -> None:
    handle = sdk.submit(APP, arguments={"prompt": "please fail"})

    with pytest.raises(FalClientHTTPError) as failed:
        handle.get()

    assert (failed.value.status_code, failed.value.error_type) == (500, "runner_server_error")
    status = handle.status()
    assert isinstance(status, Completed) and "fails every prompt" in status.error


def test_the_sdk_cancels_and_is_refused_once_completed(sdk: fal_client.SyncClient) -> None:
    handle = sdk.submit(APP, arguments={"prompt": "a long shot"})
    handle.cancel()
    status = handle.status()

    assert isinstance(status, Completed) and status.error == "Request was cancelled."
    with pytest.raises(FalClientHTTPError) as refused:
        handle.cancel()
    assert refused.value.status_code == 400


def test_the_sdk_gets_422_for_an_invalid_input(sdk: fal_client.SyncClient) -> None:
    with pytest.raises(FalClientHTTPError) as invalid:
        sdk.submit(APP, arguments={"duration": "8s"})

    assert invalid.value.status_code == 422
    assert invalid.value.message == [
        {"loc": ["body", "prompt"], "msg": "Field required", "type": "missing"}
    ]


def test_a_request_is_queued_with_a_position_then_in_progress_then_completed(
    api: httpx.Client, clock: FakeClock
) -> None:
    first = submit(api, {"prompt": "one"})
    second = submit(api, {"prompt": "two"})

    assert (first["status"], first["queue_position"], second["queue_position"]) == (
        "IN_QUEUE",
        0,
        1,
    )
    assert first["response_url"].endswith(f"/fal/{ROOT}/requests/{first['request_id']}")
    queued = api.get(f"/{ROOT}/requests/{second['request_id']}/status").json()
    assert (queued["status"], queued["queue_position"], queued["logs"]) == ("IN_QUEUE", 1, None)
    clock.advance(50)
    running = api.get(f"/{ROOT}/requests/{first['request_id']}/status", params={"logs": 1})
    assert running.json()["status"] == "IN_PROGRESS"
    assert running.json()["logs"][-1]["message"] == "Generating video: 40%"
    assert "queue_position" not in running.json()
    clock.advance(50)
    done = api.get(f"/{ROOT}/requests/{first['request_id']}/status").json()
    assert (done["status"], done["logs"], done["metrics"]) == (
        "COMPLETED",
        None,
        {"inference_time": 90.0},
    )


def test_the_result_is_refused_until_completed(api: httpx.Client, clock: FakeClock) -> None:
    request_id = submit(api, {"prompt": "slow"})["request_id"]

    early = api.get(f"/{ROOT}/requests/{request_id}")
    clock.advance(100)
    late = api.get(f"/{ROOT}/requests/{request_id}")

    assert (early.status_code, early.json()) == (400, {"detail": "Request is still in progress"})
    assert late.json()["video"]["file_name"] == f"{request_id}.mp4"


def test_a_request_is_found_only_under_its_own_apps_root(api: httpx.Client) -> None:
    request_id = submit(api, {"prompt": "x"})["request_id"]

    other_app = api.get(f"/fal-ai/kling/requests/{request_id}/status")

    assert (other_app.status_code, other_app.json()) == (
        404,
        {"detail": f"Request {request_id} not found"},
    )


@pytest.mark.parametrize(
    ("body", "loc", "kind"),
    [
        ([1], ["body"], "dict_type"),
        ({}, ["body", "prompt"], "missing"),
        ({"prompt": 3}, ["body", "prompt"], "string_type"),
        ({"prompt": "x", "duration": "long"}, ["body", "duration"], "value_error"),
    ],
)
def test_invalid_inputs_are_422_with_a_detail_list(
    api: httpx.Client, body: Any, loc: list[str], kind: str
) -> None:
    response = api.post(f"/{APP}", json=body)

    assert response.status_code == 422
    ((detail,),) = [response.json()["detail"]]
    assert (detail["loc"], detail["type"]) == (loc, kind)


def test_a_key_is_required(server: SimServer) -> None:
    bearer = httpx.post(
        f"{server.url}/fal/{APP}", json={"prompt": "x"}, headers={"Authorization": "Bearer k"}
    )

    assert bearer.status_code == 401
    assert "Key" in bearer.json()["detail"]


def test_a_rate_limit_is_a_429_with_retry_after(server: SimServer, api: httpx.Client) -> None:
    api.post(f"{server.url}/_sim/config", json={"rpm_limit": 1}).raise_for_status()
    try:
        submit(api, {"prompt": "one"})
        refused = api.post(f"/{APP}", json={"prompt": "two"})
    finally:
        api.post(f"{server.url}/_sim/config", json={"rpm_limit": 10_000}).raise_for_status()

    assert refused.status_code == 429
    assert refused.json()["detail"].startswith("Rate limit exceeded")
    assert int(refused.headers["retry-after"]) > 0


def test_server_faults_carry_fals_error_type(server: SimServer, api: httpx.Client) -> None:
    rule = {"endpoint": "fal.status", "kind": "status", "code": 503, "count": 1}
    api.post(f"{server.url}/_sim/faults", json=[rule]).raise_for_status()
    request_id = submit(api, {"prompt": "x"})["request_id"]

    faulted = api.get(f"/{ROOT}/requests/{request_id}/status")

    assert faulted.status_code == 503
    assert faulted.json()["error_type"] == "runner_scheduling_failure"
    assert faulted.headers["x-fal-error-type"] == "runner_scheduling_failure"
    stats = api.get(f"{server.url}/_sim/stats").json()
    assert (stats["calls"]["fal.submit"], stats["faults"]["fal.status"]) == (1, 1)
