"""The simulator's Replicate-style predictions, driven over HTTP as Replicate's API is."""

import re
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from simulator import SimConfig, SimServer
from tests.helpers import FakeClock

VERSION = "5c7d5dc6dd8bf75c1acaa8565735e7986bc5b66206b55cca93cb72c9bf15ccaa"


@pytest.fixture(scope="module")
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(scope="module")
def server(clock: FakeClock) -> Iterator[SimServer]:
    with SimServer(SimConfig(fixed_duration_s=100), clock=clock) as server:
        yield server


@pytest.fixture(scope="module")
def http(server: SimServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, headers={"Authorization": "Bearer r8_test"}) as http:
        yield http


@pytest.fixture
def api(http: httpx.Client) -> httpx.Client:
    """A client of the simulator's Replicate API, whose counters and jobs start afresh."""
    http.post("/_sim/reset").raise_for_status()
    return http


def run(api: httpx.Client, input: dict[str, Any], model: str = "acme/painter") -> dict[str, Any]:
    response = api.post(f"/v1/models/{model}/predictions", json={"input": input})
    assert response.status_code == 201
    return response.json()


def test_a_prediction_starts_then_processes_then_succeeds(
    server: SimServer, api: httpx.Client, clock: FakeClock
) -> None:
    created = run(api, {"prompt": "a red fox", "num_outputs": 2})
    assert re.fullmatch(r"[a-z2-7]{26}", created["id"])
    assert created["model"] == "acme/painter"
    assert re.fullmatch(r"[0-9a-f]{64}", created["version"])
    assert created["input"] == {"prompt": "a red fox", "num_outputs": 2}
    assert created["status"] == "starting"
    assert (created["output"], created["error"], created["logs"]) == (None, None, "")
    assert (created["started_at"], created["completed_at"]) == (None, None)
    assert created["data_removed"] is False
    assert created["metrics"] == {}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", created["created_at"])
    get_url = f"{server.url}/v1/predictions/{created['id']}"
    assert created["urls"] == {
        "get": get_url,
        "cancel": f"{get_url}/cancel",
        "web": f"https://replicate.com/p/{created['id']}",
    }

    clock.advance(50)
    processing = api.get(created["urls"]["get"]).json()
    assert processing["status"] == "processing"
    assert processing["started_at"] is not None
    clock.advance(25)
    later = api.get(created["urls"]["get"]).json()
    assert len(later["logs"]) > len(processing["logs"]) > 0

    clock.advance(25)
    done = api.get(created["urls"]["get"]).json()
    assert done["status"] == "succeeded"
    assert done["completed_at"] is not None
    assert done["metrics"] == {"predict_time": 90.0, "total_time": 100.0}
    assert len(done["output"]) == 2
    for url in done["output"]:
        image = api.get(url)
        assert image.headers["content-type"] == "image/png"
        assert image.content.startswith(b"\x89PNG")


def test_a_prompt_asking_to_fail_ends_failed(api: httpx.Client, clock: FakeClock) -> None:
    created = run(api, {"prompt": "this should FAIL"})
    clock.advance(100)
    failed = api.get(f"/v1/predictions/{created['id']}").json()

    assert failed["status"] == "failed"
    assert isinstance(failed["error"], str)
    assert failed["output"] is None


def test_cancel_stops_a_running_prediction_but_not_a_finished_one(
    api: httpx.Client, clock: FakeClock
) -> None:
    running = run(api, {"prompt": "slow"})
    finished = run(api, {"prompt": "quick"})
    clock.advance(20)
    canceled = api.post(f"/v1/predictions/{running['id']}/cancel")
    clock.advance(100)
    kept = api.post(f"/v1/predictions/{finished['id']}/cancel")

    assert canceled.status_code == 200
    assert canceled.json()["status"] == "canceled"
    assert canceled.json()["completed_at"] is not None
    assert api.get(f"/v1/predictions/{running['id']}").json()["status"] == "canceled"
    assert kept.json()["status"] == "succeeded"


@pytest.mark.parametrize(
    ("version", "model", "version_id"),
    [
        (f"acme/painter:{VERSION}", "acme/painter", VERSION),
        (VERSION, "unknown/unknown", VERSION),
    ],
)
def test_predictions_can_name_a_version(
    api: httpx.Client, version: str, model: str, version_id: str
) -> None:
    response = api.post("/v1/predictions", json={"version": version, "input": {"prompt": "x"}})

    assert response.status_code == 201
    assert (response.json()["model"], response.json()["version"]) == (model, version_id)


def test_owner_name_runs_the_same_version_as_the_model_endpoint(api: httpx.Client) -> None:
    by_name = api.post("/v1/predictions", json={"version": "acme/painter", "input": {}}).json()

    assert by_name["version"] == run(api, {})["version"]


def test_a_malformed_version_is_not_permitted(api: httpx.Client) -> None:
    response = api.post("/v1/predictions", json={"version": "not a version!", "input": {}})

    assert response.status_code == 422
    assert response.json()["title"] == "Invalid version or not permitted"


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (
            {"version": VERSION},
            {"type": "required", "field": "", "description": "input is required"},
        ),
        (
            {"input": {}},
            {"type": "required", "field": "", "description": "version is required"},
        ),
        (
            {"version": VERSION, "input": "a cat"},
            {
                "type": "invalid_type",
                "field": "input",
                "description": "Invalid type. Expected: object, given: string",
            },
        ),
        (
            {"version": VERSION, "input": {}, "inptu": {}},
            {
                "type": "additional_property_not_allowed",
                "field": "",
                "description": "Additional property inptu is not allowed",
            },
        ),
    ],
)
def test_invalid_bodies_fail_validation(
    api: httpx.Client, body: dict[str, Any], problem: dict[str, str]
) -> None:
    response = api.post("/v1/predictions", json=body)

    assert response.status_code == 422
    assert response.json()["title"] == "Input validation failed"
    assert response.json()["status"] == 422
    assert response.json()["invalid_fields"] == [problem]


def test_unknown_prediction_is_not_found(api: httpx.Client) -> None:
    response = api.get("/v1/predictions/nope")

    assert response.status_code == 404
    assert response.json() == {"detail": "Not found."}


def test_a_token_is_required(api: httpx.Client) -> None:
    body = {"version": VERSION, "input": {}}
    response = api.post("/v1/predictions", json=body, headers={"Authorization": ""})

    assert response.status_code == 401
    assert response.json()["title"] == "Unauthenticated"


def test_the_job_timeline_and_stats_record_the_run(api: httpx.Client, clock: FakeClock) -> None:
    created = run(api, {"prompt": "x"})
    clock.advance(100)
    api.get(f"/v1/predictions/{created['id']}")
    api.post(f"/v1/predictions/{created['id']}/cancel")

    timeline = api.get(f"/_sim/jobs/{created['id']}").json()
    assert timeline["kind"] == "prediction"
    assert timeline["status"] == "succeeded"
    assert timeline["finished_at"] == timeline["created_at"] + 100
    assert timeline["observed_at"] == timeline["finished_at"]
    stats = api.get("/_sim/stats").json()
    assert stats["calls"] == {
        "predictions.create": 1,
        "predictions.get": 1,
        "predictions.cancel": 1,
    }


def test_a_scaled_down_prediction_completes_in_real_time() -> None:
    with (
        SimServer(SimConfig(fixed_duration_s=100, time_scale=0.001)) as server,
        httpx.Client(headers={"Authorization": "Bearer r8_test"}) as api,
    ):
        created = api.post(
            f"{server.url}/v1/models/acme/painter/predictions", json={"input": {"prompt": "x"}}
        ).json()
        deadline = time.monotonic() + 10
        prediction = created
        while prediction["status"] not in ("succeeded", "failed", "canceled"):
            assert time.monotonic() < deadline, "prediction never finished"
            time.sleep(0.01)
            prediction = api.get(created["urls"]["get"]).json()

    assert prediction["status"] == "succeeded"
