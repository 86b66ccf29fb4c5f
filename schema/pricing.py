"""Token estimates and costs, in integer micro-dollars so sums are exact.

Token estimate: about three characters per token plus a few tokens of framing per
message. Real tokenizers give about four characters per token for English, so the
estimate errs high, which is the safe side for a budget reservation and a TPM limiter.
(``tiktoken`` would need its encodings downloaded at run time, and fits OpenAI only.)
"""

import json
import math
from typing import Any

from schema.inputs import RUNWAY_DEFAULT_DURATION_S
from schema.routes import ModelSpec, Protocol

CHARS_PER_TOKEN = 3
TOKENS_PER_MESSAGE = 4
TOKENS_PER_REQUEST = 3
MICROS = 1_000_000
VEO_DEFAULT_SECONDS = 8


def estimate_tokens(text: str) -> int:
    return math.ceil(len(text) / CHARS_PER_TOKEN)


def _text_of(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return json.dumps(content, separators=(",", ":"))


def estimate_input_tokens(protocol: Protocol, input: dict[str, Any]) -> int:
    """Tokens the provider will count for the request's input (an upper estimate)."""
    if protocol in (Protocol.OPENAI_CHAT, Protocol.ANTHROPIC_MESSAGES):
        messages = input.get("messages") or []
        total = TOKENS_PER_REQUEST + estimate_tokens(_text_of(input.get("system")))
        for message in messages:
            total += TOKENS_PER_MESSAGE + estimate_tokens(_text_of(message.get("content")))
        return total
    return TOKENS_PER_REQUEST + estimate_tokens(str(input.get("prompt") or ""))


def max_output_tokens(spec: ModelSpec, input: dict[str, Any]) -> int:
    requested = input.get("max_completion_tokens") or input.get("max_tokens")
    return int(requested) if requested else spec.max_output_tokens


def cost_micros(spec: ModelSpec, usage: dict[str, float]) -> int:
    """What a call with ``usage`` costs at ``spec``'s prices, rounded up to a micro-dollar."""
    usd_micros = (
        usage.get("input_tokens", 0) * spec.input_per_mtok
        + usage.get("output_tokens", 0) * spec.output_per_mtok
        + MICROS
        * (
            usage.get("images", 0) * spec.per_image
            + usage.get("video_seconds", 0) * spec.per_video_second
            + usage.get("predict_seconds", 0) * spec.per_second
            + spec.per_request
        )
    )
    return math.ceil(usd_micros - 1e-6)


def max_cost_micros(protocol: Protocol, spec: ModelSpec, input: dict[str, Any]) -> int:
    """The most a job can cost, reserved against the tenant's budget at enqueue."""
    usage: dict[str, float] = {"input_tokens": estimate_input_tokens(protocol, input)}
    if protocol in (Protocol.OPENAI_CHAT, Protocol.ANTHROPIC_MESSAGES):
        usage["output_tokens"] = max_output_tokens(spec, input) * int(input.get("n") or 1)
    elif protocol == Protocol.OPENAI_IMAGES:
        usage["images"] = int(input.get("n") or 1)
    elif protocol == Protocol.REPLICATE_PREDICTIONS:
        usage["images"] = int(input.get("num_outputs") or 1)
        usage["predict_seconds"] = spec.max_duration_s or spec.expected_duration_s or 0
    elif protocol == Protocol.OPENAI_VIDEOS:
        usage["video_seconds"] = int(input.get("seconds") or 4)
    elif protocol == Protocol.GOOGLE_VEO:
        samples = int((input.get("parameters") or {}).get("sampleCount") or 1)
        usage["video_seconds"] = veo_seconds(input) * samples
    elif protocol == Protocol.RUNWAY_TASKS:
        usage["video_seconds"] = int(input.get("duration") or RUNWAY_DEFAULT_DURATION_S)
    return cost_micros(spec, usage)


def veo_seconds(input: dict[str, Any]) -> int:
    """Seconds of each video a Veo request makes (Veo's default when it names none)."""
    return int((input.get("parameters") or {}).get("durationSeconds") or VEO_DEFAULT_SECONDS)


def usd(micros: int) -> float:
    return round(micros / MICROS, 6)
