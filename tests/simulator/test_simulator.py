"""The simulator, driven through the official OpenAI SDK the way product code would."""

import re
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from simulator import SimConfig, SimServer
from simulator.openai_protocol import format_duration
from simulator.ratelimit import TokenBucket

USER = [{"role": "user", "content": "Say hello to the job queue"}]


@pytest.fixture(scope="module")
def server() -> Iterator[SimServer]:
    with SimServer() as server:
        yield server


@pytest.fixture(scope="module")
def sdk(server: SimServer) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=server.base_url, api_key="sk-test", max_retries=0) as sdk:
        yield sdk


@pytest.fixture
def client(server: SimServer, sdk: openai.OpenAI) -> openai.OpenAI:
    """The SDK pointed at the shared server, whose counters start at zero."""
    httpx.post(f"{server.url}/_sim/reset").raise_for_status()
    return sdk


def stats(server: SimServer) -> dict[str, Any]:
    return httpx.get(f"{server.url}/_sim/stats").json()


def test_chat_completion_returns_content_and_usage(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(model="gpt-4o-mini", messages=USER)

    assert completion.id.startswith("chatcmpl-")
    assert completion.object == "chat.completion"
    assert completion.model == "gpt-4o-mini"
    assert completion.system_fingerprint == "fp_genqsim"
    [choice] = completion.choices
    assert choice.finish_reason == "stop"
    assert choice.message.role == "assistant"
    assert choice.message.content is not None
    assert choice.message.content.startswith("Simulated reply to: Say hello to the job queue")
    usage = completion.usage
    assert usage is not None
    assert usage.prompt_tokens > 0
    assert 16 <= usage.completion_tokens <= 40
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


def test_replies_are_deterministic(client: openai.OpenAI) -> None:
    first = client.chat.completions.create(model="gpt-4o", messages=USER)
    second = client.chat.completions.create(model="gpt-4o", messages=USER)

    assert first.choices[0].message.content == second.choices[0].message.content
    assert first.usage == second.usage


def test_n_returns_that_many_choices(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(model="gpt-4.1-mini", messages=USER, n=3)

    assert [choice.index for choice in completion.choices] == [0, 1, 2]


def test_raw_response_carries_openai_headers(client: openai.OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=USER)
    completion = raw.parse()

    assert completion.usage is not None
    assert re.fullmatch(r"req_[0-9a-f]{32}", raw.headers["x-request-id"])
    assert raw.headers["openai-version"] == "2020-10-01"
    assert int(raw.headers["openai-processing-ms"]) >= 0
    assert raw.headers["x-ratelimit-limit-requests"] == "10000"
    assert raw.headers["x-ratelimit-limit-tokens"] == "2000000"
    assert raw.headers["x-ratelimit-remaining-requests"] == "9999"
    remaining_tokens = 2_000_000 - completion.usage.total_tokens
    assert raw.headers["x-ratelimit-remaining-tokens"] == str(remaining_tokens)
    duration = r"(\d+m)?\d+(\.\d+)?s|\d+ms"
    assert re.fullmatch(duration, raw.headers["x-ratelimit-reset-requests"])
    assert re.fullmatch(duration, raw.headers["x-ratelimit-reset-tokens"])


@pytest.mark.parametrize("limit", ["max_tokens", "max_completion_tokens"])
def test_token_limit_truncates_with_finish_reason_length(client: openai.OpenAI, limit: str) -> None:
    arguments: Any = {limit: 3}
    completion = client.chat.completions.create(model="gpt-4o-mini", messages=USER, **arguments)

    assert completion.choices[0].finish_reason == "length"
    assert completion.usage is not None
    assert completion.usage.completion_tokens == 3


def test_wrong_api_key_is_rejected() -> None:
    with SimServer(SimConfig(api_key="sk-right-key")) as server:
        wrong = openai.OpenAI(base_url=server.base_url, api_key="sk-wrong-key", max_retries=0)
        with pytest.raises(openai.AuthenticationError) as caught:
            wrong.models.list()
        right = openai.OpenAI(base_url=server.base_url, api_key="sk-right-key", max_retries=0)
        models = right.models.list()

    assert caught.value.code == "invalid_api_key"
    assert "sk-wr***ey" in caught.value.message
    assert caught.value.response.headers["x-request-id"].startswith("req_")
    assert models.data


def test_missing_api_key_is_rejected(server: SimServer) -> None:
    response = httpx.post(f"{server.base_url}/chat/completions", json={})

    assert response.status_code == 401
    assert response.json()["error"]["type"] == "invalid_request_error"


def test_unknown_model_is_not_found(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(model="gpt-imaginary", messages=USER)

    assert caught.value.code == "model_not_found"
    assert "`gpt-imaginary` does not exist" in caught.value.message


@pytest.mark.parametrize(
    ("arguments", "param"),
    [
        ({"messages": []}, "messages"),
        ({"messages": [{"role": "robot", "content": "hi"}]}, "messages[0].role"),
        ({"messages": [{"role": "user", "content": 5}]}, "messages[0].content"),
        ({"messages": [{"role": "user"}]}, "messages[0].content"),
        (
            {"messages": [{"role": "user", "content": [{"type": "text"}]}]},
            "messages[0].content[0].text",
        ),
        ({"temperature": 3}, "temperature"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"n": 9}, "n"),
        ({"stream": True}, "stream"),
        ({"extra_body": {"bogus": 1}}, None),
    ],
)
def test_invalid_request_is_a_bad_request(
    client: openai.OpenAI, arguments: dict[str, Any], param: str | None
) -> None:
    request: Any = {"model": "gpt-4o-mini", "messages": USER, **arguments}
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(**request)

    assert caught.value.type == "invalid_request_error"
    assert caught.value.param == param


def test_context_length_exceeded(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="gpt-4o-mini", messages=USER, max_tokens=16_384)

    assert caught.value.code == "context_length_exceeded"
    assert "maximum context length is 16384 tokens" in caught.value.message
    assert "16384 in the completion" in caught.value.message


def test_prompt_alone_can_exceed_the_context(client: openai.OpenAI) -> None:
    long_prompt: Any = [{"role": "user", "content": "word " * 20_000}]
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="gpt-4o-mini", messages=long_prompt)

    assert caught.value.code == "context_length_exceeded"


def test_models_are_listed(client: openai.OpenAI) -> None:
    models = client.models.list()

    assert {model.id for model in models} == {
        "gpt-4o-mini",
        "gpt-4o",
        "gpt-4.1-mini",
        "gpt-image-1",
        "dall-e-3",
        "dall-e-2",
        "sora-2",
        "sora-2-pro",
    }
    assert client.models.retrieve("gpt-4o").owned_by == "system"


def test_stats_count_calls_and_reset(server: SimServer, client: openai.OpenAI) -> None:
    first = client.chat.completions.create(model="gpt-4o-mini", messages=USER)
    second = client.chat.completions.create(model="gpt-4o-mini", messages=USER, max_tokens=2)
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="nope", messages=USER)
    client.models.list()

    counted = stats(server)
    assert counted["calls"] == {"chat.completions": 3, "models.list": 1}
    assert (counted["in_flight"], counted["peak_in_flight"]) == (0, 1)
    assert counted["errors"] == {"chat.completions": 1}
    assert first.usage is not None
    assert second.usage is not None
    assert counted["tokens"] == {
        "prompt_tokens": first.usage.prompt_tokens + second.usage.prompt_tokens,
        "completion_tokens": first.usage.completion_tokens + second.usage.completion_tokens,
        "total_tokens": first.usage.total_tokens + second.usage.total_tokens,
    }

    httpx.post(f"{server.url}/_sim/reset").raise_for_status()
    assert stats(server) == {
        "calls": {},
        "errors": {},
        "rate_limited": {},
        "faults": {},
        "in_flight": 0,
        "peak_in_flight": 0,
        "tokens": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
    }


@pytest.mark.parametrize("body", [b"{not json", b"[1, 2]"])
def test_body_must_be_a_json_object(server: SimServer, body: bytes) -> None:
    response = httpx.post(
        f"{server.base_url}/chat/completions",
        content=body,
        headers={"Authorization": "Bearer sk-test", "Content-Type": "application/json"},
    )

    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"
    assert response.json()["error"]["param"] is None
    assert response.headers["x-request-id"].startswith("req_")


def test_unknown_url_answers_like_openai(server: SimServer) -> None:
    response = httpx.get(f"{server.base_url}/nowhere")

    assert response.status_code == 404
    assert response.json()["error"]["message"] == "Invalid URL (GET /v1/nowhere)"


def test_stopped_server_refuses_connections() -> None:
    with SimServer() as server:
        assert httpx.get(f"{server.url}/_sim/stats").status_code == 200

    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{server.url}/_sim/stats")


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0s"), (0.006, "6ms"), (1, "1s"), (59.5, "59.5s"), (90, "1m30s"), (3600, "1h0m0s")],
)
def test_durations_read_like_openai_headers(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


def test_token_bucket_refills_continuously_up_to_its_limit() -> None:
    bucket = TokenBucket(60, now=100.0)
    bucket.take(50)
    bucket.refill(110.0, 60)

    assert bucket.remaining == 20
    assert bucket.wait(30) == 10
    assert bucket.reset_after() == 40
    bucket.refill(200.0, 60)
    assert bucket.remaining == 60
    assert bucket.reset_after() == 0
