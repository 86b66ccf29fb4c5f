"""Rate limits enforced per API key and protocol family, as token buckets on a fake clock."""

import math
import time
from collections.abc import Callable, Iterator
from typing import Any

import anthropic
import httpx
import openai
import pytest

from simulator import SimServer
from simulator.ratelimit import TokenBucket
from tests.helpers import FakeClock

USER: Any = [{"role": "user", "content": "Say hello to the job queue"}]


@pytest.fixture(scope="module")
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(scope="module")
def server(clock: FakeClock) -> Iterator[SimServer]:
    with SimServer(clock=clock) as server:
        yield server


@pytest.fixture(scope="module")
def http(server: SimServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url) as http:
        yield http


@pytest.fixture(scope="module")
def sdks(server: SimServer) -> Iterator[dict[tuple[str, str], Any]]:
    """SDK clients by (provider, API key), made once for the module."""
    made: dict[tuple[str, str], Any] = {}
    yield made
    for client in made.values():
        client.close()


@pytest.fixture
def configure(http: httpx.Client) -> Iterator[Callable[..., None]]:
    """A setter of config fields; buckets and counters start empty, default limits come back."""
    http.post("/_sim/reset").raise_for_status()
    yield lambda **fields: http.post("/_sim/config", json=fields).raise_for_status()
    defaults = {"rpm_limit": 10_000, "tpm_limit": 2_000_000, "otpm_limit": 400_000}
    http.post("/_sim/config", json=defaults).raise_for_status()


def openai_client(server: SimServer, sdks: dict[tuple[str, str], Any], key: str) -> openai.OpenAI:
    if ("openai", key) not in sdks:
        sdks["openai", key] = openai.OpenAI(base_url=server.base_url, api_key=key, max_retries=0)
    return sdks["openai", key]


def claude(server: SimServer, sdks: dict[tuple[str, str], Any], key: str) -> anthropic.Anthropic:
    if ("anthropic", key) not in sdks:
        sdks["anthropic", key] = anthropic.Anthropic(
            base_url=server.url, api_key=key, max_retries=0
        )
    return sdks["anthropic", key]


def chat(client: openai.OpenAI, **arguments: Any) -> Any:
    return client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=USER, **arguments
    )


def test_openai_requests_beyond_the_rpm_get_429_until_the_bucket_refills(
    server: SimServer, sdks: Any, http: httpx.Client, configure: Any, clock: FakeClock
) -> None:
    configure(rpm_limit=3)
    client = openai_client(server, sdks, "sk-one")
    remaining = [chat(client).headers["x-ratelimit-remaining-requests"] for _ in range(3)]
    with pytest.raises(openai.RateLimitError) as caught:
        chat(client)

    assert remaining == ["2", "1", "0"]
    error = caught.value
    assert error.status_code == 429
    assert error.body == {
        "message": (
            "Rate limit reached for gpt-4o-mini in organization org-sim on requests per min "
            "(RPM): Limit 3, Used 3, Requested 1. Please try again in 20s. "
            "Visit https://platform.openai.com/account/rate-limits to learn more."
        ),
        "type": "requests",
        "param": None,
        "code": "rate_limit_exceeded",
    }
    headers = error.response.headers
    assert (headers["retry-after"], headers["retry-after-ms"]) == ("20", "20000")
    assert headers["x-ratelimit-remaining-requests"] == "0"
    assert headers["x-ratelimit-reset-requests"] == "1m0s"

    clock.advance(19.9)
    with pytest.raises(openai.RateLimitError):
        chat(client)
    clock.advance(0.1)
    assert chat(client).headers["x-ratelimit-remaining-requests"] == "0"
    stats = http.get("/_sim/stats").json()
    assert stats["rate_limited"] == {"chat.completions": 2}
    assert stats["calls"] == {"chat.completions": 6}


def test_openai_tpm_counts_max_tokens_then_settles_to_actual_usage(
    server: SimServer, sdks: Any, configure: Any
) -> None:
    configure(tpm_limit=300)
    client = openai_client(server, sdks, "sk-one")
    first = chat(client, max_tokens=250)
    usage = first.parse().usage

    assert first.headers["x-ratelimit-remaining-tokens"] == str(300 - usage.total_tokens)
    with pytest.raises(openai.RateLimitError) as caught:
        chat(client, max_tokens=250)
    assert caught.value.type == "tokens"
    assert "on tokens per min (TPM): Limit 300" in caught.value.message


def test_a_request_larger_than_the_limit_can_never_succeed(
    server: SimServer, sdks: Any, configure: Any
) -> None:
    configure(tpm_limit=100)
    with pytest.raises(openai.RateLimitError) as caught:
        chat(openai_client(server, sdks, "sk-one"), max_tokens=200)

    assert caught.value.body["message"].startswith("Request too large for gpt-4o-mini")
    assert "retry-after" not in caught.value.response.headers


def test_limits_are_kept_per_api_key_and_per_protocol_family(
    server: SimServer, sdks: Any, configure: Any
) -> None:
    configure(rpm_limit=1)
    chat(openai_client(server, sdks, "sk-one"))
    with pytest.raises(openai.RateLimitError):
        chat(openai_client(server, sdks, "sk-one"))

    assert chat(openai_client(server, sdks, "sk-two")).http_response.status_code == 200
    message = claude(server, sdks, "sk-one").messages.create(
        model="claude-haiku-4-5", max_tokens=20, messages=USER
    )
    assert message.type == "message"


def test_anthropic_answers_rate_limit_error_with_retry_after(
    server: SimServer, sdks: Any, configure: Any, clock: FakeClock
) -> None:
    configure(rpm_limit=2)
    client = claude(server, sdks, "sk-ant")
    for _ in range(2):
        client.messages.create(model="claude-haiku-4-5", max_tokens=20, messages=USER)
    with pytest.raises(anthropic.RateLimitError) as caught:
        client.messages.create(model="claude-haiku-4-5", max_tokens=20, messages=USER)

    error = caught.value
    assert error.type == "rate_limit_error"
    assert error.api_message is not None
    assert error.api_message.startswith(
        "This request would exceed the rate limit for your organization (org-sim) of 2 requests "
        "per minute."
    )
    headers = error.response.headers
    assert headers["retry-after"] == "30"
    assert headers["anthropic-ratelimit-requests-remaining"] == "0"
    full_again = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(clock.now + 60))
    assert headers["anthropic-ratelimit-requests-reset"] == full_again


def test_anthropic_output_tokens_are_estimated_from_max_tokens(
    server: SimServer, sdks: Any, configure: Any
) -> None:
    configure(otpm_limit=1_000)
    client = claude(server, sdks, "sk-ant")
    raw = client.messages.with_raw_response.create(
        model="claude-haiku-4-5", max_tokens=900, messages=USER
    )
    output_tokens = raw.parse().usage.output_tokens
    with pytest.raises(anthropic.RateLimitError) as caught:
        client.messages.create(
            model="claude-haiku-4-5", max_tokens=1_000 - output_tokens + 1, messages=USER
        )

    left = str(1_000 - output_tokens)
    assert raw.headers["anthropic-ratelimit-output-tokens-remaining"] == left
    assert raw.headers["anthropic-ratelimit-tokens-remaining"] == left
    assert caught.value.api_message is not None
    assert "of 1,000 output tokens per minute" in caught.value.api_message


def test_replicate_throttles_with_retry_after(http: httpx.Client, configure: Any) -> None:
    configure(rpm_limit=1)
    headers = {"Authorization": "Bearer r8_test"}
    url = "/v1/models/acme/painter/predictions"
    assert http.post(url, json={"input": {}}, headers=headers).status_code == 201
    throttled = http.post(url, json={"input": {}}, headers=headers)

    assert throttled.status_code == 429
    assert throttled.headers["retry-after"] == "60"
    assert throttled.json()["detail"] == "Request was throttled. Expected available in 60 seconds"


def test_token_bucket_waits_are_exact_and_debts_are_repaid() -> None:
    bucket = TokenBucket(120, now=0.0)
    bucket.take(150)

    assert bucket.remaining == 0
    assert bucket.used == 120
    assert bucket.wait(10) == 20
    assert math.isinf(bucket.wait(121))
    bucket.take(-1_000)
    assert bucket.remaining == 120
