"""Injected faults: error statuses in each protocol's shape, hangs, resets, broken bodies."""

import json
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import openai
import pytest

from simulator import SimConfig, SimServer
from simulator.faults import FaultRule

USER: Any = [{"role": "user", "content": "Say hello to the job queue"}]
AUTH = {"Authorization": "Bearer sk-test"}


@pytest.fixture(scope="module")
def server() -> Iterator[SimServer]:
    with SimServer() as server:
        yield server


@pytest.fixture(scope="module")
def http(server: SimServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, headers=AUTH) as http:
        yield http


@pytest.fixture
def faults(http: httpx.Client) -> Iterator[Any]:
    """A setter of the server's fault rules; counters start at zero and rules end empty."""
    http.post("/_sim/reset").raise_for_status()

    def set_rules(*rules: dict[str, Any]) -> list[dict[str, Any]]:
        response = http.post("/_sim/faults", json=list(rules))
        response.raise_for_status()
        return response.json()

    yield set_rules
    http.delete("/_sim/faults").raise_for_status()


def stats(http: httpx.Client) -> dict[str, Any]:
    return http.get("/_sim/stats").json()


def models(http: httpx.Client, **options: Any) -> httpx.Response:
    return http.get("/v1/models", **options)


def test_openai_500_is_an_internal_server_error(
    server: SimServer, http: httpx.Client, faults: Any
) -> None:
    faults({"endpoint": "chat.completions", "kind": "status", "code": 500, "count": 1})
    client = openai.OpenAI(base_url=server.base_url, api_key="sk-test", max_retries=0)
    with pytest.raises(openai.InternalServerError) as caught:
        client.chat.completions.create(model="gpt-4o-mini", messages=USER)
    completion = client.chat.completions.create(model="gpt-4o-mini", messages=USER)

    assert caught.value.status_code == 500
    assert caught.value.type == "server_error"
    assert caught.value.body is not None
    assert caught.value.response.headers["x-request-id"].startswith("req_")
    assert "The server had an error while processing your request" in caught.value.message
    assert completion.choices
    counted = stats(http)
    assert counted["calls"] == {"chat.completions": 2}
    assert counted["faults"] == {"chat.completions": 1}
    assert counted["errors"] == {}


def test_openai_503_is_overloaded_with_retry_after(http: httpx.Client, faults: Any) -> None:
    faults({"kind": "status", "code": 503, "retry_after": 7, "count": 1})
    response = models(http)

    assert response.status_code == 503
    assert response.headers["retry-after"] == "7"
    assert response.json()["error"]["message"] == (
        "The engine is currently overloaded, please try again later"
    )


def test_anthropic_529_is_overloaded(server: SimServer, faults: Any) -> None:
    faults({"endpoint": "messages", "kind": "status", "code": 529, "count": 1})
    client = anthropic.Anthropic(base_url=server.url, api_key="sk-ant", max_retries=0)
    with pytest.raises(anthropic.OverloadedError) as caught:
        client.messages.create(model="claude-haiku-4-5", max_tokens=20, messages=USER)

    assert isinstance(caught.value, anthropic.InternalServerError)
    assert caught.value.body == {
        "type": "error",
        "error": {"type": "overloaded_error", "message": "Overloaded"},
        "request_id": caught.value.response.headers["request-id"],
    }


def test_replicate_502_is_a_problem_body(http: httpx.Client, faults: Any) -> None:
    faults({"endpoint": "predictions.get", "kind": "status", "code": 502, "count": 1})
    response = http.get("/v1/predictions/anything")

    assert response.status_code == 502
    assert response.json()["status"] == 502
    assert response.json()["title"] == "Bad Gateway"


def test_reset_drops_the_connection_without_an_answer(http: httpx.Client, faults: Any) -> None:
    faults({"endpoint": "models.list", "kind": "reset", "count": 1})
    with pytest.raises(httpx.RemoteProtocolError):
        models(http)

    assert models(http).status_code == 200
    assert stats(http)["calls"] == {"models.list": 2}
    assert stats(http)["faults"] == {"models.list": 1}


def test_timeout_holds_the_answer_past_a_short_client_timeout(
    http: httpx.Client, faults: Any
) -> None:
    faults({"kind": "timeout", "delay_s": 0.5, "count": 1})
    with pytest.raises(httpx.ReadTimeout):
        models(http, timeout=0.1)


def test_malformed_json_is_a_truncated_200(http: httpx.Client, faults: Any) -> None:
    faults({"kind": "malformed_json", "count": 1})
    response = models(http)

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.text.startswith('{"object":"list"')
    with pytest.raises(json.JSONDecodeError):
        response.json()


@pytest.mark.parametrize(
    ("path", "body", "text_of"),
    [
        (
            "/v1/chat/completions",
            {"model": "gpt-4o-mini", "messages": USER},
            lambda answer: answer["choices"][0]["message"]["content"],
        ),
        (
            "/v1/messages",
            {"model": "claude-haiku-4-5", "max_tokens": 64, "messages": USER},
            lambda answer: answer["content"][0]["text"],
        ),
    ],
)
def test_nul_text_puts_a_nul_in_the_answers_text(
    http: httpx.Client, faults: Any, path: str, body: dict[str, Any], text_of: Any
) -> None:
    faults({"kind": "nul_text", "count": 1})
    headers = {"x-api-key": "sk-test", "anthropic-version": "2023-06-01"}
    spoiled = http.post(path, json=body, headers=headers)
    clean = http.post(path, json=body, headers=headers)

    assert spoiled.status_code == clean.status_code == 200
    assert text_of(spoiled.json()).endswith("\x00")
    assert "\x00" not in text_of(clean.json())


def test_slow_body_trickles_the_real_answer(http: httpx.Client, faults: Any) -> None:
    faults({"kind": "slow_body", "delay_s": 0.4, "count": 1})
    with http.stream("GET", "/v1/models") as response:
        chunks = list(response.iter_raw())

    assert len(chunks) > 1
    assert json.loads(b"".join(chunks))["object"] == "list"


def test_count_applies_to_the_next_matching_requests_only(http: httpx.Client, faults: Any) -> None:
    faults({"endpoint": "models.list", "kind": "status", "code": 500, "count": 2})
    image = http.post("/v1/images/generations", json={"prompt": "a cat"})
    statuses = [models(http).status_code for _ in range(3)]

    assert image.status_code == 200
    assert statuses == [500, 500, 200]
    assert http.get("/_sim/faults").json()[0]["count"] == 0


def test_probability_draws_from_the_seeded_rng(http: httpx.Client, faults: Any) -> None:
    faults({"kind": "status", "code": 500, "probability": 0.5})
    first = [models(http).status_code for _ in range(12)]
    http.post("/_sim/reset").raise_for_status()
    second = [models(http).status_code for _ in range(12)]

    assert first == second
    assert set(first) == {200, 500}


def test_rules_can_come_from_the_config() -> None:
    rule = FaultRule(endpoint="models.list", kind="status", code=502)
    with SimServer(SimConfig(faults=[rule])) as server:
        response = httpx.get(f"{server.base_url}/models", headers=AUTH)

    assert response.status_code == 502
    assert response.json()["error"]["type"] == "cf_bad_gateway"


@pytest.mark.parametrize(
    "rules",
    [
        [{"kind": "status", "count": 1, "probability": 0.5}],
        [{"kind": "explode"}],
        [{"kind": "status", "code": 200}],
        {"kind": "status"},
    ],
)
def test_invalid_rules_are_refused(http: httpx.Client, rules: Any) -> None:
    response = http.post("/_sim/faults", json=rules)

    assert response.status_code == 400
    assert http.get("/_sim/faults").json() == []
