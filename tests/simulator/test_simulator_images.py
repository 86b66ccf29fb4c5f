"""The simulator's OpenAI images endpoint, driven through the official OpenAI SDK."""

import base64
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from simulator import SimServer

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def server() -> Iterator[SimServer]:
    with SimServer() as server:
        yield server


@pytest.fixture(scope="module")
def sdk(server: SimServer) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=server.base_url, api_key="sk-test", max_retries=0) as sdk:
        yield sdk


@pytest.fixture(scope="module")
def http(server: SimServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, headers={"Authorization": "Bearer sk-test"}) as http:
        yield http


@pytest.fixture
def client(http: httpx.Client, sdk: openai.OpenAI) -> openai.OpenAI:
    """The SDK pointed at the shared server, whose counters start at zero."""
    http.post("/_sim/reset").raise_for_status()
    return sdk


def test_dall_e_2_answers_urls_to_png_files_served_by_the_simulator(
    server: SimServer, http: httpx.Client, client: openai.OpenAI
) -> None:
    images = client.images.generate(prompt="a queue of robots", n=2, size="256x256")

    assert images.data is not None
    assert len(images.data) == 2
    assert images.usage is None
    for image in images.data:
        assert image.url is not None
        assert image.url.startswith(f"{server.url}/_sim/files/")
        assert image.b64_json is None
        assert image.revised_prompt is None
        png = http.get(image.url)
        assert png.headers["content-type"] == "image/png"
        assert png.content.startswith(PNG_SIGNATURE)


def test_dall_e_3_revises_the_prompt_and_can_answer_base64(client: openai.OpenAI) -> None:
    images = client.images.generate(
        model="dall-e-3", prompt="a lighthouse", size="1792x1024", response_format="b64_json"
    )

    assert images.data is not None
    [image] = images.data
    assert image.b64_json is not None
    assert base64.b64decode(image.b64_json).startswith(PNG_SIGNATURE)
    assert image.revised_prompt is not None
    assert "a lighthouse" in image.revised_prompt


def test_gpt_image_1_answers_base64_with_token_usage(client: openai.OpenAI) -> None:
    images = client.images.generate(
        model="gpt-image-1", prompt="a cat", n=3, size="1536x1024", quality="high"
    )

    assert images.data is not None
    assert len(images.data) == 3
    assert all(image.b64_json and image.url is None for image in images.data)
    assert images.usage is not None
    assert images.usage.output_tokens == 3 * 6240
    assert images.usage.input_tokens == images.usage.input_tokens_details.text_tokens > 0
    assert images.usage.input_tokens_details.image_tokens == 0
    assert images.usage.total_tokens == images.usage.input_tokens + images.usage.output_tokens
    assert (images.size, images.quality, images.output_format) == ("1536x1024", "high", "png")


def test_gpt_image_1_rejects_response_format(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.images.generate(model="gpt-image-1", prompt="a cat", response_format="url")

    assert caught.value.code == "unknown_parameter"
    assert caught.value.param == "response_format"
    assert "Unknown parameter: 'response_format'." in caught.value.message


@pytest.mark.parametrize(
    ("arguments", "param"),
    [
        ({"model": "dall-e-2", "size": "1792x1024"}, "size"),
        ({"model": "dall-e-3", "size": "512x512"}, "size"),
        ({"model": "gpt-image-1", "size": "1024x1792"}, "size"),
        ({"model": "dall-e-3", "n": 2}, "n"),
        ({"model": "dall-e-2", "n": 11}, "n"),
        ({"model": "dall-e-2", "quality": "hd"}, "quality"),
        ({"model": "gpt-image-1", "quality": "hd"}, "quality"),
        ({"model": "dall-e-2", "response_format": "gif"}, "response_format"),
        ({"model": "gpt-4o-mini"}, "model"),
        ({"model": "dall-e-2", "prompt": "x" * 1001}, "prompt"),
        ({"extra_body": {"bogus": 1}}, "bogus"),
    ],
)
def test_invalid_request_is_a_bad_request(
    client: openai.OpenAI, arguments: dict[str, Any], param: str
) -> None:
    request: Any = {"prompt": "a cat", **arguments}
    with pytest.raises(openai.BadRequestError) as caught:
        client.images.generate(**request)

    assert caught.value.type == "invalid_request_error"
    assert caught.value.param == param


def test_missing_prompt_is_a_bad_request(http: httpx.Client) -> None:
    response = http.post("/v1/images/generations", json={"model": "dall-e-2"})

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "missing_required_parameter"


def test_a_forbidden_prompt_is_refused_by_the_safety_system(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.images.generate(model="dall-e-3", prompt="something Forbidden here")

    assert caught.value.body == {
        "message": (
            "Your request was rejected as a result of our safety system. Your prompt may "
            "contain text that is not allowed by our safety system."
        ),
        "type": "invalid_request_error",
        "param": None,
        "code": "content_policy_violation",
    }


def test_answers_carry_openai_headers_and_are_counted(
    http: httpx.Client, client: openai.OpenAI
) -> None:
    raw = client.images.with_raw_response.generate(prompt="a cat")
    with pytest.raises(openai.BadRequestError):
        client.images.generate(prompt="forbidden cat")

    assert raw.headers["x-request-id"].startswith("req_")
    assert raw.headers["x-ratelimit-remaining-requests"] == "9999"
    stats = http.get("/_sim/stats").json()
    assert stats["calls"] == {"images.generations": 2}
    assert stats["errors"] == {"images.generations": 1}


def test_image_models_are_listed_but_are_not_chat_models(client: openai.OpenAI) -> None:
    listed = {model.id for model in client.models.list()}
    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(
            model="dall-e-3", messages=[{"role": "user", "content": "hi"}]
        )

    assert {"gpt-image-1", "dall-e-3", "dall-e-2"} <= listed
    assert "not a chat model" in caught.value.message
