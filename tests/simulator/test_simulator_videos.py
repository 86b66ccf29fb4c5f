"""The simulator's OpenAI videos endpoints, driven through the official OpenAI SDK.

Most tests move a fake clock instead of waiting; one runs a scaled-down video
in real time through the SDK's own poller.
"""

from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from simulator import SimConfig, SimServer
from tests.helpers import FakeClock

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

AUTH = {"Authorization": "Bearer sk-test"}


@pytest.fixture(scope="module")
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(scope="module")
def server(clock: FakeClock) -> Iterator[SimServer]:
    with SimServer(SimConfig(fixed_duration_s=100), clock=clock) as server:
        yield server


@pytest.fixture(scope="module")
def sdk(server: SimServer) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=server.base_url, api_key="sk-test", max_retries=0) as sdk:
        yield sdk


@pytest.fixture(scope="module")
def http(server: SimServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, headers=AUTH) as http:
        yield http


@pytest.fixture
def client(http: httpx.Client, sdk: openai.OpenAI) -> openai.OpenAI:
    """The SDK pointed at the shared server, whose counters and jobs start afresh."""
    http.post("/_sim/reset").raise_for_status()
    return sdk


def job(http: httpx.Client, video_id: str) -> dict[str, Any]:
    return http.get(f"/_sim/jobs/{video_id}").json()


def test_a_video_is_queued_then_in_progress_then_completed(
    client: openai.OpenAI, clock: FakeClock
) -> None:
    created = client.videos.with_raw_response.create(
        model="sora-2-pro", prompt="a calico cat", seconds="8", size="1792x1024"
    )
    video = created.parse()
    assert video.id.startswith("video_")
    assert (video.object, video.status, video.progress) == ("video", "queued", 0)
    assert (video.model, video.seconds, video.size, video.quality) == (
        "sora-2-pro",
        "8",
        "1792x1024",
        "standard",
    )
    assert video.created_at == int(clock.now)
    assert (video.completed_at, video.expires_at, video.error) == (None, None, None)
    assert created.headers["openai-poll-after-ms"] == "10000"

    clock.advance(50)
    running = client.videos.with_raw_response.retrieve(video.id)
    assert (running.parse().status, running.parse().progress) == ("in_progress", 50)
    assert running.headers["openai-poll-after-ms"] == "10000"
    clock.advance(46)
    nearly = client.videos.with_raw_response.retrieve(video.id)
    assert (nearly.parse().progress, nearly.headers["openai-poll-after-ms"]) == (96, "1000")

    clock.advance(4)
    done = client.videos.retrieve(video.id)
    assert (done.status, done.progress) == ("completed", 100)
    assert done.completed_at == video.created_at + 100
    assert done.expires_at == done.completed_at + 86_400


def test_the_job_records_when_it_completed_and_when_a_poll_saw_it(
    http: httpx.Client, client: openai.OpenAI, clock: FakeClock
) -> None:
    video = client.videos.create(prompt="a lighthouse")
    created_at = clock.now
    client.videos.retrieve(video.id)
    clock.advance(130)
    client.videos.retrieve(video.id)
    client.videos.retrieve(video.id)

    timeline = job(http, video.id)
    assert timeline["kind"] == "video"
    assert timeline["status"] == "succeeded"
    assert timeline["created_at"] == created_at
    assert timeline["duration_s"] == 100
    assert timeline["finished_at"] == timeline["finishes_at"] == created_at + 100
    assert timeline["observed_at"] == created_at + 130
    assert timeline["polls"] == 3


def test_content_is_served_once_completed_in_each_variant(
    client: openai.OpenAI, clock: FakeClock
) -> None:
    video = client.videos.create(prompt="a cat playing piano")
    with pytest.raises(openai.NotFoundError) as caught:
        client.videos.download_content(video.id)
    assert "Video is not ready yet" in caught.value.message

    clock.advance(100)
    mp4 = client.videos.download_content(video.id)
    thumbnail = client.videos.download_content(video.id, variant="thumbnail")
    spritesheet = client.videos.download_content(video.id, variant="spritesheet")

    assert mp4.response.headers["content-type"] == "video/mp4"
    assert mp4.content[4:8] == b"ftyp"
    assert thumbnail.response.headers["content-type"] == "image/webp"
    assert spritesheet.response.headers["content-type"] == "image/jpeg"


def test_a_prompt_asking_to_fail_ends_failed(client: openai.OpenAI, clock: FakeClock) -> None:
    video = client.videos.create(prompt="please fail")
    clock.advance(100)
    failed = client.videos.retrieve(video.id)

    assert failed.status == "failed"
    assert failed.error is not None
    assert failed.error.code == "video_generation_failed"
    assert failed.expires_at is None
    with pytest.raises(openai.NotFoundError):
        client.videos.download_content(video.id)


def test_deleting_a_running_video_cancels_it(
    http: httpx.Client, client: openai.OpenAI, clock: FakeClock
) -> None:
    video = client.videos.create(prompt="a long take")
    clock.advance(10)
    deleted = client.videos.delete(video.id)

    assert (deleted.id, deleted.deleted, deleted.object) == (video.id, True, "video.deleted")
    with pytest.raises(openai.NotFoundError):
        client.videos.retrieve(video.id)
    timeline = job(http, video.id)
    assert timeline["status"] == "canceled"
    assert timeline["canceled_at"] == timeline["deleted_at"] == timeline["finished_at"]


def test_videos_are_listed_newest_first(client: openai.OpenAI, clock: FakeClock) -> None:
    first = client.videos.create(prompt="one")
    clock.advance(1)
    second = client.videos.create(prompt="two")

    page = client.videos.list(limit=1)
    assert [video.id for video in page.data] == [second.id]
    assert page.has_more is True
    assert [video.id for video in client.videos.list(order="asc")] == [first.id, second.id]


def test_json_bodies_are_accepted_too(http: httpx.Client, client: openai.OpenAI) -> None:
    response = http.post("/v1/videos", json={"prompt": "a cat", "seconds": "12"})

    assert response.status_code == 200
    assert response.json()["seconds"] == "12"
    assert response.json()["model"] == "sora-2"


@pytest.mark.parametrize(
    ("arguments", "param"),
    [
        ({"seconds": "5"}, "seconds"),
        ({"size": "640x480"}, "size"),
        ({"model": "sora-3"}, "model"),
        ({"extra_body": {"fps": 30}}, "fps"),
    ],
)
def test_invalid_request_is_a_bad_request(
    client: openai.OpenAI, arguments: dict[str, Any], param: str
) -> None:
    request: Any = {"prompt": "a cat", **arguments}
    with pytest.raises(openai.BadRequestError) as caught:
        client.videos.create(**request)

    assert caught.value.param == param


def test_unknown_video_is_not_found(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError):
        client.videos.retrieve("video_nope")


def test_the_sdk_poller_follows_the_poll_hint_to_completion() -> None:
    config = SimConfig(fixed_duration_s=100, time_scale=0.001)
    with (
        SimServer(config) as server,
        openai.OpenAI(base_url=server.base_url, api_key="sk-test", max_retries=0) as client,
    ):
        video = client.videos.create_and_poll(prompt="a quick one", seconds="4")
        stats = httpx.get(f"{server.url}/_sim/stats").json()

    assert video.status == "completed"
    assert stats["calls"]["videos.create"] == 1
    assert stats["calls"]["videos.retrieve"] >= 1
