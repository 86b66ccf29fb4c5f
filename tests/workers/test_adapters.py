"""Adapters driven directly: the result shape, rate-limit headers, hints, and cancel."""

import inspect

import httpx
import pytest

from schema.routes import ASYNC_PROTOCOLS
from tests.waiting import eventually
from workers.providers import (
    ADAPTERS,
    AsyncState,
    ErrorClass,
    ProviderError,
    adapter_for,
    client_options,
)

CHAT_INPUT = {"messages": [{"role": "user", "content": "Hello"}], "max_tokens": 8}


@pytest.fixture
def http() -> httpx.Client:
    with httpx.Client(timeout=5) as client:
        yield client


def test_results_carry_request_id_and_rate_limit_headers(routes, http, sim_control) -> None:
    chat = adapter_for(routes.by_name["openai"], http).run("gpt-4o-mini", CHAT_INPUT)
    claude = adapter_for(routes.by_name["anthropic"], http).run(
        "claude-haiku-4-5", {**CHAT_INPUT, "max_tokens": 8}
    )

    assert chat.request_id.startswith("req_")
    assert int(chat.rate_limit_headers["x-ratelimit-remaining-requests"]) > 0
    assert claude.request_id.startswith("req_")
    assert "anthropic-ratelimit-requests-remaining" in claude.rate_limit_headers


def test_a_429_carries_the_providers_wait(routes, http, sim_control) -> None:
    sim_control.config(rpm_limit=1)
    adapter = adapter_for(routes.by_name["openai"], http)
    adapter.run("gpt-4o-mini", CHAT_INPUT)

    with pytest.raises(ProviderError) as refused:
        adapter.run("gpt-4o-mini", CHAT_INPUT)

    error = refused.value
    assert (error.error_class, error.retryable, error.http_status) == (
        ErrorClass.RATE_LIMITED,
        True,
        429,
    )
    assert 0 < error.retry_after_s <= 60
    assert "Rate limit reached" in error.message


def test_replicate_prediction_submit_poll_cancel(routes, http, sim_control) -> None:
    adapter = adapter_for(routes.by_name["replicate"], http)

    submitted = adapter.submit("black-forest-labs/flux-schnell", {"prompt": "a cat"})
    assert submitted.state == AsyncState.RUNNING
    adapter.cancel(submitted.provider_job_id)

    polled = adapter.poll(submitted.provider_job_id)
    assert polled.state == AsyncState.CANCELED
    assert sim_control.calls("predictions.cancel") == 1


def test_a_starting_prediction_is_queued_and_a_processing_one_shows_its_logged_progress(
    routes, http, sim_control
) -> None:
    sim_control.config(time_scale=0.02, fixed_duration_s=100)
    adapter = adapter_for(routes.by_name["replicate"], http)

    submitted = adapter.submit("black-forest-labs/flux-schnell", {"prompt": "a cat"})
    running = eventually(
        lambda: adapter.poll(submitted.provider_job_id),
        lambda p: p.progress is not None and p.progress >= 10,
    )

    assert (submitted.queued, submitted.progress) == (True, None)
    assert (running.state, running.queued) == (AsyncState.RUNNING, False)


def test_video_submit_poll_content_and_cancel(routes, http, sim_control) -> None:
    sim_control.config(time_scale=0.002, fixed_duration_s=100)
    adapter = adapter_for(routes.by_name["openai-video"], http)

    submitted = adapter.submit("sora-2", {"prompt": "waves", "seconds": "4"})
    first = adapter.poll(submitted.provider_job_id)
    done = eventually(
        lambda: adapter.poll(submitted.provider_job_id),
        lambda p: p.state == AsyncState.SUCCEEDED,
    )

    assert first.poll_after_s is not None
    assert done.progress == 100
    assert done.result.usage == {"video_seconds": 4.0}
    assert adapter.content(submitted.provider_job_id)[:16]
    other = adapter.submit("sora-2", {"prompt": "more waves"})
    adapter.cancel(other.provider_job_id)
    assert sim_control.calls("videos.delete") == 1


def test_a_key_the_provider_refuses_is_a_permanent_auth_error(routes, http, sim_control):
    sim_control.config(api_key="sk-the-right-one")

    with pytest.raises(ProviderError) as refused:
        adapter_for(routes.by_name["anthropic"], http).run("claude-haiku-4-5", CHAT_INPUT)

    assert (refused.value.error_class, refused.value.retryable) == (ErrorClass.AUTH, False)
    assert "sk-genq-test" not in refused.value.message


def test_fal_submit_reports_the_queue_position_then_the_result(routes, http, sim_control) -> None:
    sim_control.config(time_scale=0.002, fixed_duration_s=100)
    adapter = adapter_for(routes.by_name["fal"], http)

    submitted = adapter.submit("fal-ai/veo3/fast", {"prompt": "waves", "duration": "8s"})
    done = eventually(
        lambda: adapter.poll(submitted.provider_job_id),
        lambda p: p.state == AsyncState.SUCCEEDED,
    )

    assert submitted.provider_job_id == f"fal-ai/veo3/requests/{submitted.request_id}"
    assert (submitted.state, submitted.queue_position, submitted.progress) == (
        AsyncState.RUNNING,
        0,
        None,
    )
    assert (done.progress, done.queue_position, done.queued) == (100, None, False)
    assert done.result.output["urls"][0].endswith(f"/_sim/files/{submitted.request_id}.mp4")
    assert sim_control.calls("fal.result") == 1


def test_fal_polls_while_queued_carry_the_position_and_no_progress(
    routes, http, sim_control
) -> None:
    sim_control.config(fixed_duration_s=1000)
    adapter = adapter_for(routes.by_name["fal"], http)
    adapter.submit("fal-ai/veo3/fast", {"prompt": "first"})
    second = adapter.submit("fal-ai/veo3/fast", {"prompt": "second"})

    polled = adapter.poll(second.provider_job_id)

    assert (polled.state, polled.queue_position, polled.progress) == (AsyncState.RUNNING, 1, None)
    assert second.queued and polled.queued


def test_fal_cancel_is_quiet_once_the_request_completed(routes, http, sim_control) -> None:
    sim_control.config(time_scale=0.002, fixed_duration_s=100)
    adapter = adapter_for(routes.by_name["fal"], http)
    running = adapter.submit("fal-ai/veo3/fast", {"prompt": "stop me"})
    adapter.cancel(running.provider_job_id)
    stopped = adapter.poll(running.provider_job_id)
    done = adapter.submit("fal-ai/veo3/fast", {"prompt": "finish"})
    eventually(lambda: adapter.poll(done.provider_job_id), lambda p: p.state != AsyncState.RUNNING)

    adapter.cancel(done.provider_job_id)

    assert (stopped.state, stopped.error.error_class) == (
        AsyncState.FAILED,
        ErrorClass.PROVIDER_JOB_FAILED,
    )
    assert "cancelled" in stopped.error.message
    assert sim_control.calls("fal.cancel") == 2


@pytest.mark.parametrize(
    ("fault", "error_class", "retryable"),
    [
        ({"kind": "status", "code": 429, "retry_after": 3}, ErrorClass.RATE_LIMITED, True),
        ({"kind": "status", "code": 503}, ErrorClass.SERVER, True),
        ({"kind": "status", "code": 401}, ErrorClass.AUTH, False),
    ],
)
def test_fal_error_answers_map_to_the_taxonomy(
    routes, http, sim_control, fault, error_class, retryable
) -> None:
    sim_control.faults({**fault, "endpoint": "fal.submit", "count": 1})

    with pytest.raises(ProviderError) as refused:
        adapter_for(routes.by_name["fal"], http).submit("fal-ai/veo3/fast", {"prompt": "x"})

    assert (refused.value.error_class, refused.value.retryable) == (error_class, retryable)
    if fault["code"] == 429:
        assert refused.value.retry_after_s == 3


def test_fal_validation_errors_name_the_field(routes, http, sim_control) -> None:
    with pytest.raises(ProviderError) as invalid:
        adapter_for(routes.by_name["fal"], http).submit("fal-ai/veo3/fast", {"duration": "8s"})

    assert (invalid.value.error_class, invalid.value.http_status) == (ErrorClass.BAD_REQUEST, 422)
    assert invalid.value.message == "HTTP 422: body.prompt: Field required"


@pytest.mark.parametrize("protocol", sorted(ASYNC_PROTOCOLS))
def test_every_async_adapter_takes_a_callback_url(protocol: str) -> None:
    submit = inspect.signature(ADAPTERS[protocol].submit)
    assert submit.parameters["callback_url"].default is None


def test_a_route_client_sends_no_cookie_a_provider_set(routes) -> None:
    sent: list[str | None] = []

    def provider(request: httpx.Request) -> httpx.Response:
        sent.append(request.headers.get("cookie"))
        return httpx.Response(200, headers={"set-cookie": "affinity=tenant-a; Path=/"}, json={})

    options = client_options(routes.by_name["openai"], 1)
    with httpx.Client(transport=httpx.MockTransport(provider), **options) as client:
        client.get("http://127.0.0.1/v1/models")
        client.get("http://127.0.0.1/v1/models")

    assert sent == [None, None]
    assert len(client.cookies) == 0
