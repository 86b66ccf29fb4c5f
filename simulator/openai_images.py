"""OpenAI's image generation endpoint, POST /v1/images/generations."""

import re
import secrets
import time
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from simulator.files import file_url, png_base64
from simulator.openai_models import IMAGE_MODELS
from simulator.openai_protocol import (
    integer_param,
    invalid_request,
    invalid_type,
    invalid_value,
    openai_endpoint,
    read_json_object,
    required_string,
    unknown_parameter,
)
from simulator.tokens import count_text

DEFAULT_MODEL = "dall-e-2"
GPT_IMAGE = "gpt-image-1"
PARAMETERS = frozenset(
    {
        "background", "model", "moderation", "n", "output_compression", "output_format",
        "partial_images", "prompt", "quality", "response_format", "safety_identifier", "size",
        "stream", "style", "user",
    }
)  # fmt: skip
SIZES = {
    "gpt-image-1": ("1024x1024", "1536x1024", "1024x1536", "auto"),
    "dall-e-3": ("1024x1024", "1792x1024", "1024x1792"),
    "dall-e-2": ("256x256", "512x512", "1024x1024"),
}
QUALITIES = {
    "gpt-image-1": ("low", "medium", "high", "auto"),
    "dall-e-3": ("standard", "hd"),
    "dall-e-2": ("standard",),
}
MAX_IMAGES = {"gpt-image-1": 10, "dall-e-3": 1, "dall-e-2": 10}
MAX_PROMPT_CHARS = {"gpt-image-1": 32_000, "dall-e-3": 4_000, "dall-e-2": 1_000}
RESPONSE_FORMATS = ("url", "b64_json")
IMAGE_TOKENS = {
    ("low", "1024x1024"): 272,
    ("medium", "1024x1024"): 1056,
    ("high", "1024x1024"): 4160,
    ("low", "1536x1024"): 408,
    ("medium", "1536x1024"): 1584,
    ("high", "1536x1024"): 6240,
}
"""gpt-image-1's output tokens per image, by quality and size (portrait costs as landscape)."""
REFUSED_WORD = re.compile(r"\bforbidden\b", re.IGNORECASE)
SAFETY_MESSAGE = (
    "Your request was rejected as a result of our safety system. Your prompt may contain text "
    "that is not allowed by our safety system."
)


@dataclass(frozen=True)
class ImageRequest:
    """The parts of a validated request that shape the answer."""

    model: str
    prompt: str
    n: int
    size: str
    quality: str
    response_format: str


def parse_image_request(body: dict[str, Any]) -> ImageRequest:
    """Validate a request body as OpenAI does, raising its 400 errors."""
    for name in body:
        if name not in PARAMETERS:
            raise unknown_parameter(name)
    prompt = required_string(body, "prompt", "prompt")
    model = body.get("model") or DEFAULT_MODEL
    if model not in IMAGE_MODELS:
        raise invalid_value("model", model, tuple(IMAGE_MODELS))
    if model == GPT_IMAGE and "response_format" in body:
        raise unknown_parameter("response_format")
    if body.get("stream"):
        raise invalid_request(
            "Streaming is not supported by the genq simulator; send 'stream': false.",
            param="stream",
            code="unsupported_value",
        )
    if len(prompt) > MAX_PROMPT_CHARS[model]:
        raise invalid_request(
            f"Invalid 'prompt': string too long. Expected a string with maximum length "
            f"{MAX_PROMPT_CHARS[model]}, but got a string with length {len(prompt)} instead.",
            param="prompt",
            code="string_above_max_length",
        )
    n = integer_param(body, "n", 1, MAX_IMAGES[model]) or 1
    gpt_image = model == GPT_IMAGE
    size = _choice(body, "size", SIZES[model], "auto" if gpt_image else "1024x1024")
    quality = _choice(body, "quality", QUALITIES[model], "auto" if gpt_image else "standard")
    response_format = (
        "b64_json" if gpt_image else _choice(body, "response_format", RESPONSE_FORMATS, "url")
    )
    return ImageRequest(model, prompt, n, size, quality, response_format)


@openai_endpoint("images.generations")
async def create_images(request: Request) -> JSONResponse:
    """POST /v1/images/generations, answered with tiny PNGs."""
    image = parse_image_request(await read_json_object(request))
    if REFUSED_WORD.search(image.prompt):
        raise invalid_request(SAFETY_MESSAGE, code="content_policy_violation")
    data = [_image(request, image) for _ in range(image.n)]
    answer: dict[str, Any] = {"created": int(time.time()), "data": data}
    if image.model == GPT_IMAGE:
        size = "1024x1024" if image.size == "auto" else image.size
        quality = "medium" if image.quality == "auto" else image.quality
        answer |= {
            "background": "opaque",
            "output_format": "png",
            "quality": quality,
            "size": size,
            "usage": _usage(image.prompt, quality, size, image.n),
        }
    return JSONResponse(answer)


routes = [Route("/v1/images/generations", create_images, methods=["POST"])]


def _choice(body: dict[str, Any], name: str, supported: tuple[str, ...], default: str) -> str:
    value = body.get(name)
    if value is None:
        return default
    if not isinstance(value, str):
        raise invalid_type(name, "a string", value)
    if value not in supported:
        raise invalid_value(name, value, supported)
    return value


def _image(request: Request, image: ImageRequest) -> dict[str, str]:
    if image.response_format == "b64_json":
        item = {"b64_json": png_base64()}
    else:
        item = {"url": file_url(request, f"img-{secrets.token_hex(12)}.png")}
    if image.model == "dall-e-3":
        item["revised_prompt"] = f"A detailed, simulated rendering of: {image.prompt}"
    return item


def _usage(prompt: str, quality: str, size: str, n: int) -> dict[str, Any]:
    text_tokens = count_text(prompt)
    landscape = "1536x1024" if size != "1024x1024" else size
    output_tokens = IMAGE_TOKENS[quality, landscape] * n
    return {
        "input_tokens": text_tokens,
        "output_tokens": output_tokens,
        "total_tokens": text_tokens + output_tokens,
        "input_tokens_details": {"text_tokens": text_tokens, "image_tokens": 0},
    }
