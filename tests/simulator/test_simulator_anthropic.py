"""The simulator's Anthropic messages endpoint, driven through the official Anthropic SDK."""

import datetime
import re
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import pytest

from simulator import SimConfig, SimServer

MODEL = "claude-haiku-4-5"
USER: Any = [{"role": "user", "content": "Say hello to the job queue"}]
HEADERS = {"x-api-key": "sk-ant-test", "anthropic-version": "2023-06-01"}


@pytest.fixture(scope="module")
def server() -> Iterator[SimServer]:
    with SimServer() as server:
        yield server


@pytest.fixture(scope="module")
def sdk(server: SimServer) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=server.url, api_key="sk-ant-test", max_retries=0) as sdk:
        yield sdk


@pytest.fixture(scope="module")
def http(server: SimServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url) as http:
        yield http


@pytest.fixture
def client(http: httpx.Client, sdk: anthropic.Anthropic) -> anthropic.Anthropic:
    """The SDK pointed at the shared server, whose counters start at zero."""
    http.post("/_sim/reset").raise_for_status()
    return sdk


def test_message_has_text_content_and_usage(client: anthropic.Anthropic) -> None:
    message = client.messages.create(model=MODEL, max_tokens=200, messages=USER)

    assert re.fullmatch(r"msg_\w{24}", message.id)
    assert (message.type, message.role, message.model) == ("message", "assistant", MODEL)
    [block] = message.content
    assert block.type == "text"
    assert block.text.startswith("Simulated reply to: Say hello to the job queue")
    assert (message.stop_reason, message.stop_sequence) == ("end_turn", None)
    assert message.usage.input_tokens > 0
    assert 16 <= message.usage.output_tokens <= 40
    assert message.usage.cache_creation_input_tokens == 0
    assert message.usage.cache_read_input_tokens == 0


def test_answers_carry_request_id_and_rate_limit_headers(client: anthropic.Anthropic) -> None:
    raw = client.messages.with_raw_response.create(model=MODEL, max_tokens=50, messages=USER)
    message = raw.parse()

    assert re.fullmatch(r"req_\w{24}", raw.headers["request-id"])
    assert raw.headers["anthropic-ratelimit-requests-limit"] == "10000"
    assert raw.headers["anthropic-ratelimit-requests-remaining"] == "9999"
    input_left = 2_000_000 - message.usage.input_tokens
    output_left = 400_000 - message.usage.output_tokens
    assert raw.headers["anthropic-ratelimit-input-tokens-remaining"] == str(input_left)
    assert raw.headers["anthropic-ratelimit-output-tokens-remaining"] == str(output_left)
    assert raw.headers["anthropic-ratelimit-tokens-limit"] == "400000"
    assert raw.headers["anthropic-ratelimit-tokens-remaining"] == str(output_left)
    for dimension in ("requests", "tokens", "input-tokens", "output-tokens"):
        reset = raw.headers[f"anthropic-ratelimit-{dimension}-reset"]
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", reset)
        assert datetime.datetime.fromisoformat(reset).tzinfo == datetime.UTC


def test_max_tokens_truncates_the_reply(client: anthropic.Anthropic) -> None:
    message = client.messages.create(model=MODEL, max_tokens=3, messages=USER)

    assert message.stop_reason == "max_tokens"
    assert message.usage.output_tokens == 3


def test_a_stop_sequence_ends_the_reply(client: anthropic.Anthropic) -> None:
    message = client.messages.create(
        model=MODEL, max_tokens=100, messages=USER, stop_sequences=["nope", "reply"]
    )

    assert (message.stop_reason, message.stop_sequence) == ("stop_sequence", "reply")
    assert message.content[0].type == "text"
    assert message.content[0].text == "Simulated "


def test_system_prompt_and_content_blocks_count_as_input(client: anthropic.Anthropic) -> None:
    plain = client.messages.create(model=MODEL, max_tokens=50, messages=USER)
    blocks: Any = [{"role": "user", "content": [{"type": "text", "text": USER[0]["content"]}]}]
    framed = client.messages.create(
        model=MODEL, max_tokens=50, messages=blocks, system="You are a queue."
    )

    assert framed.usage.input_tokens > plain.usage.input_tokens
    assert framed.content == plain.content


def test_x_api_key_header_is_accepted(http: httpx.Client) -> None:
    body = {"model": MODEL, "max_tokens": 20, "messages": USER}
    response = http.post("/v1/messages", json=body, headers=HEADERS)

    assert response.status_code == 200
    assert response.json()["type"] == "message"


def test_wrong_api_key_is_rejected() -> None:
    with SimServer(SimConfig(api_key="sk-ant-right")) as server:
        wrong = anthropic.Anthropic(base_url=server.url, api_key="sk-ant-wrong", max_retries=0)
        with pytest.raises(anthropic.AuthenticationError) as caught:
            wrong.messages.create(model=MODEL, max_tokens=20, messages=USER)

    assert caught.value.body == {
        "type": "error",
        "error": {"type": "authentication_error", "message": "invalid x-api-key"},
        "request_id": caught.value.response.headers["request-id"],
    }


@pytest.mark.parametrize(
    ("headers", "status", "error_type", "message"),
    [
        ({"anthropic-version": "2023-06-01"}, 401, "authentication_error", "x-api-key"),
        ({"x-api-key": "sk-ant-test"}, 400, "invalid_request_error", "anthropic-version"),
    ],
)
def test_key_and_version_headers_are_required(
    http: httpx.Client, headers: dict[str, str], status: int, error_type: str, message: str
) -> None:
    body = {"model": MODEL, "max_tokens": 20, "messages": USER}
    response = http.post("/v1/messages", json=body, headers=headers)

    assert response.status_code == status
    assert response.json()["type"] == "error"
    assert response.json()["error"]["type"] == error_type
    assert message in response.json()["error"]["message"]
    assert response.json()["request_id"] == response.headers["request-id"]


def test_unknown_model_is_not_found(client: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.NotFoundError) as caught:
        client.messages.create(model="claude-imaginary", max_tokens=20, messages=USER)

    assert caught.value.type == "not_found_error"
    assert caught.value.api_message == "model: claude-imaginary"


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"max_tokens": 0}, "max_tokens: Input should be greater than or equal to 1"),
        ({"messages": []}, "messages: at least one message is required"),
        ({"messages": [{"role": "robot", "content": "hi"}]}, "messages.0.role: Input should be"),
        ({"messages": [{"role": "user"}]}, "messages.0.content: Field required"),
        ({"messages": [{"role": "user", "content": [{"type": "text"}]}]}, "content.0.text"),
        (
            {"extra_body": {"temperature": 1.5}},
            "temperature: Input should be less than or equal to 1",
        ),
        ({"system": 5}, "system: Input should be a valid list"),
        ({"extra_body": {"bogus": 1}}, "bogus: Extra inputs are not permitted"),
    ],
)
def test_invalid_request_is_a_bad_request(
    client: anthropic.Anthropic, arguments: dict[str, Any], message: str
) -> None:
    request: Any = {"model": MODEL, "max_tokens": 20, "messages": USER, **arguments}
    with pytest.raises(anthropic.BadRequestError) as caught:
        client.messages.create(**request)

    assert caught.value.type == "invalid_request_error"
    assert caught.value.api_message is not None
    assert message in caught.value.api_message


@pytest.mark.parametrize(
    "body",
    [
        {"model": MODEL, "messages": USER},
        {"model": MODEL, "max_tokens": 20, "messages": USER, "stream": True},
    ],
)
def test_missing_max_tokens_and_streaming_are_bad_requests(
    http: httpx.Client, body: dict[str, Any]
) -> None:
    response = http.post("/v1/messages", json=body, headers=HEADERS)

    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"


def test_stats_count_calls_errors_and_tokens(
    http: httpx.Client, client: anthropic.Anthropic
) -> None:
    message = client.messages.create(model=MODEL, max_tokens=50, messages=USER)
    with pytest.raises(anthropic.NotFoundError):
        client.messages.create(model="claude-nope", max_tokens=50, messages=USER)

    stats = http.get("/_sim/stats").json()
    assert stats["calls"] == {"messages": 2}
    assert stats["errors"] == {"messages": 1}
    assert stats["tokens"]["prompt_tokens"] == message.usage.input_tokens
    assert stats["tokens"]["completion_tokens"] == message.usage.output_tokens
