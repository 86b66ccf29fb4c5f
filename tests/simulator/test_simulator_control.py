"""The simulator's own /_sim endpoints, its job durations and its generated files."""

import random
import statistics
from collections.abc import Iterator

import httpx
import pydantic
import pytest

from simulator import SimConfig, SimServer
from simulator.durations import job_duration

AUTH = {"Authorization": "Bearer sk-test"}


@pytest.fixture(scope="module")
def server() -> Iterator[SimServer]:
    with SimServer(SimConfig(time_scale=0.01)) as server:
        yield server


@pytest.fixture
def http(server: SimServer) -> Iterator[httpx.Client]:
    """A client of the shared server, which starts afresh and gets its config back after."""
    original = server.config.model_dump(mode="json")
    with httpx.Client(base_url=server.url, headers=AUTH) as http:
        http.post("/_sim/reset").raise_for_status()
        yield http
        http.post("/_sim/config", json=original).raise_for_status()


def test_config_is_read_and_partly_updated_at_runtime(
    server: SimServer, http: httpx.Client
) -> None:
    updated = http.post("/_sim/config", json={"rpm_limit": 5, "latency_ms": 1})

    assert updated.status_code == 200
    assert updated.json()["rpm_limit"] == 5
    assert http.get("/_sim/config").json() == updated.json()
    assert (server.config.rpm_limit, server.config.latency_ms) == (5, 1)
    models = http.get("/v1/models")
    assert models.headers["x-ratelimit-limit-requests"] == "5"


def test_a_config_update_applies_all_fields_or_none(server: SimServer, http: httpx.Client) -> None:
    moved = http.post("/_sim/config", json={"duration_min_s": 700, "duration_max_s": 900})
    refused = [
        http.post("/_sim/config", json={"rpm_limit": 7, "time_scale": 0}),
        http.post("/_sim/config", json={"rpm_limit": 7, "bogus": 1}),
        http.post("/_sim/config", json=[1]),
    ]

    assert moved.status_code == 200
    assert (server.config.duration_min_s, server.config.duration_max_s) == (700, 900)
    assert [response.status_code for response in refused] == [400, 400, 400]
    assert server.config.rpm_limit == 10_000


def test_reset_reseeds_so_job_durations_repeat(http: httpx.Client) -> None:
    def durations() -> list[float]:
        for prompt in ("one", "two", "three"):
            http.post("/v1/videos", json={"prompt": prompt}).raise_for_status()
        return [job["duration_s"] for job in http.get("/_sim/jobs").json()["data"]]

    first = durations()
    http.post("/_sim/reset").raise_for_status()
    second = durations()

    assert first == second
    assert len(set(first)) == 3


def test_jobs_are_listed_and_unknown_ones_are_not_found(http: httpx.Client) -> None:
    video = http.post("/v1/videos", json={"prompt": "a cat"}).json()
    prediction = http.post("/v1/models/acme/painter/predictions", json={"input": {}}).json()

    listed = http.get("/_sim/jobs").json()["data"]
    assert [(job["id"], job["kind"]) for job in listed] == [
        (video["id"], "video"),
        (prediction["id"], "prediction"),
    ]
    assert http.get("/_sim/jobs/nope").status_code == 404


def test_generated_files_are_served_by_suffix(http: httpx.Client) -> None:
    png = http.get("/_sim/files/anything.png")

    assert png.headers["content-type"] == "image/png"
    assert png.content.startswith(b"\x89PNG\r\n\x1a\n")
    assert http.get("/_sim/files/anything.exe").status_code == 404


def test_durations_are_lognormal_around_the_median_within_bounds() -> None:
    config = SimConfig(duration_median_s=100, duration_sigma=0.6)
    rng = random.Random(7)
    draws = [job_duration(config, rng) for _ in range(2001)]

    assert min(draws) >= 20
    assert max(draws) <= 600
    assert 85 <= statistics.median(draws) <= 115
    again = random.Random(7)
    assert draws[:5] == [job_duration(config, again) for _ in range(5)]


def test_time_scale_and_fixed_durations() -> None:
    rng = random.Random(0)

    assert job_duration(SimConfig(fixed_duration_s=100, time_scale=0.001), rng) == 0.1
    assert job_duration(SimConfig(time_scale=0.5, duration_sigma=0), rng) == pytest.approx(50)


def test_duration_bounds_must_be_ordered() -> None:
    with pytest.raises(pydantic.ValidationError):
        SimConfig(duration_min_s=700)
