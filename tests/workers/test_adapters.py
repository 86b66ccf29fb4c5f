"""Adapters driven directly: the result shape, rate-limit headers, hints, and cancel."""

import httpx
import pytest

from tests.waiting import eventually
from workers.providers import AsyncState, ErrorClass, ProviderError, adapter_for

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
