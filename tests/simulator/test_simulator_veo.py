"""The simulator's Google Veo, driven by the official google-genai SDK in enterprise (Vertex)
mode with an API key, as a Veo client calls it."""

import re
from collections.abc import Iterator

import httpx
import pytest
from google import genai
from google.genai import errors, types

from simulator import SimConfig, SimServer
from simulator.files import MP4
from tests.helpers import FakeClock

MODEL = "veo-3.0-generate-001"
OPERATION = re.compile(
    rf"projects/genq-simulator/locations/us-central1/publishers/google/models/{MODEL}"
    r"/operations/[0-9a-f-]{36}"
)


@pytest.fixture(scope="module")
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(scope="module")
def server(clock: FakeClock) -> Iterator[SimServer]:
    with SimServer(SimConfig(fixed_duration_s=100), clock=clock) as server:
        yield server


@pytest.fixture
def sim(server: SimServer) -> Iterator[httpx.Client]:
    """The simulator's control API, its counters, jobs and config afresh."""
    with httpx.Client(base_url=server.url) as http:
        http.post("/_sim/reset").raise_for_status()
        yield http
        http.post("/_sim/config", json={"api_key": None, "rpm_limit": 10_000}).raise_for_status()
        http.delete("/_sim/faults").raise_for_status()


def sdk(server: SimServer, key: str = "AQ.test-key") -> genai.Client:
    options = types.HttpOptions(base_url=server.url, timeout=5000)
    return genai.Client(vertexai=True, api_key=key, http_options=options)


def generate(client: genai.Client, prompt: str, **config: object) -> types.GenerateVideosOperation:
    return client.models.generate_videos(
        model=MODEL,
        source=types.GenerateVideosSource(prompt=prompt),
        config=types.GenerateVideosConfig(**config),
    )


def test_the_sdk_runs_a_video_operation_to_done(server, sim, clock) -> None:
    client = sdk(server)

    started = generate(client, "a lighthouse at dusk", number_of_videos=2, duration_seconds=6)
    clock.advance(50)
    running = client.operations.get(started)
    clock.advance(50)
    done = client.operations.get(running)

    assert OPERATION.fullmatch(started.name)
    assert (started.done, running.done, running.result) == (None, None, None)
    assert done.done is True and done.error is None
    videos = [generated.video for generated in done.result.generated_videos]
    assert [(v.video_bytes, v.mime_type) for v in videos] == [(MP4, "video/mp4")] * 2
    assert done.result.rai_media_filtered_count == 0
    stats = sim.get("/_sim/stats").json()["calls"]
    assert (stats["veo.generate"], stats["veo.fetch"]) == (1, 2)


def test_videos_land_under_the_storage_uri(server, sim, clock) -> None:
    client = sdk(server)

    started = generate(client, "waves", output_gcs_uri="gs://bucket/out/")
    clock.advance(100)
    done = client.operations.get(started)

    operation_id = started.name.rpartition("/")[2]
    (generated,) = done.result.generated_videos
    assert generated.video.uri == f"gs://bucket/out/{operation_id}/sample_0.mp4"
    assert generated.video.video_bytes is None


def test_a_failed_operation_carries_an_rpc_status(server, sim, clock) -> None:
    client = sdk(server)

    started = generate(client, "please fail")
    clock.advance(100)
    done = client.operations.get(started)

    assert done.done is True
    assert done.result is None
    assert done.error["code"] == 13
    assert "fail" in done.error["message"]


def test_filtered_videos_leave_a_count_and_reasons(server, sim, clock) -> None:
    client = sdk(server)

    started = generate(client, "something forbidden", number_of_videos=2)
    clock.advance(100)
    done = client.operations.get(started)

    assert done.error is None
    assert done.result.generated_videos is None
    assert done.result.rai_media_filtered_count == 2
    assert "usage guidelines" in done.result.rai_media_filtered_reasons[0]


def test_over_the_quota_is_resource_exhausted(server, sim) -> None:
    sim.post("/_sim/config", json={"rpm_limit": 1}).raise_for_status()
    client = sdk(server)
    generate(client, "one")

    with pytest.raises(errors.ClientError) as refused:
        generate(client, "two")

    assert (refused.value.code, refused.value.status) == (429, "RESOURCE_EXHAUSTED")
    assert "Quota exceeded" in refused.value.message


def test_an_unknown_key_is_a_400_with_api_key_invalid(server, sim) -> None:
    sim.post("/_sim/config", json={"api_key": "AQ.right"}).raise_for_status()

    client = sdk(server, "AQ.wrong")

    with pytest.raises(errors.ClientError) as refused:
        generate(client, "x")

    assert (refused.value.code, refused.value.status) == (400, "INVALID_ARGUMENT")
    assert refused.value.details["error"]["details"][0]["reason"] == "API_KEY_INVALID"


def test_a_server_fault_is_a_server_error_in_googles_envelope(server, sim) -> None:
    sim.post("/_sim/faults", json=[{"endpoint": "veo.generate", "kind": "status", "code": 503}])

    client = sdk(server)

    with pytest.raises(errors.ServerError) as failed:
        generate(client, "x")

    assert (failed.value.code, failed.value.status) == (503, "UNAVAILABLE")


def test_an_unknown_model_is_not_found(server, sim) -> None:
    client = sdk(server)

    with pytest.raises(errors.ClientError) as refused:
        client.models.generate_videos(
            model="imagen-4.0-generate-001", source=types.GenerateVideosSource(prompt="x")
        )

    assert (refused.value.code, refused.value.status) == (404, "NOT_FOUND")


def test_project_scoped_paths_name_their_project(server, sim, clock) -> None:
    resource = f"/v1/projects/p1/locations/europe-west4/publishers/google/models/{MODEL}"
    headers = {"x-goog-api-key": "AQ.test-key"}

    started = sim.post(
        f"{resource}:predictLongRunning",
        json={"instances": [{"prompt": "x"}]},
        headers=headers,
    ).json()
    clock.advance(100)
    fetched = sim.post(
        f"{resource}:fetchPredictOperation",
        json={"operationName": started["name"]},
        headers=headers,
    ).json()

    assert started["name"].startswith(f"{resource[4:]}/operations/")
    assert fetched["done"] is True and len(fetched["response"]["videos"]) == 1


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"instances": [{"prompt": "x"}], "extra": 1}, 'Unknown name "extra"'),
        ({"instances": []}, "exactly one instance"),
        ({"instances": [{"prompt": "x"}], "parameters": {"durationSeconds": 12}}, "4 to 8"),
        ({"instances": [{"prompt": "x"}], "parameters": {"storageUri": "s3://b"}}, "gs://"),
    ],
)
def test_bad_requests_are_invalid_argument(sim, body, message) -> None:
    response = sim.post(
        f"/v1beta1/publishers/google/models/{MODEL}:predictLongRunning",
        json=body,
        headers={"x-goog-api-key": "AQ.test-key"},
    )

    assert response.status_code == 400
    assert response.json()["error"]["status"] == "INVALID_ARGUMENT"
    assert message in response.json()["error"]["message"]


def test_no_key_is_unauthenticated_and_an_unknown_operation_not_found(sim) -> None:
    fetch = f"/v1/publishers/google/models/{MODEL}:fetchPredictOperation"
    anonymous = sim.post(fetch, json={"operationName": "x"})
    unknown = sim.post(
        fetch,
        json={"operationName": f"{fetch[4:].partition(':')[0]}/operations/nope"},
        headers={"x-goog-api-key": "AQ.test-key"},
    )

    assert (anonymous.status_code, anonymous.json()["error"]["status"]) == (401, "UNAUTHENTICATED")
    assert (unknown.status_code, unknown.json()["error"]["status"]) == (404, "NOT_FOUND")
