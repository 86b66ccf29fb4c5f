"""Anthropic's messages endpoint, POST /v1/messages.

Validation errors read like Anthropic's: `<path>: <what is wrong>`, the path
dotted with list indexes, as in "messages.0.role: Field required".
"""

import json
import secrets
import string
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from simulator.anthropic_protocol import (
    ANTHROPIC,
    AnthropicError,
    anthropic_endpoint,
    invalid_request,
)
from simulator.replies import last_user_text, reply_text
from simulator.tokens import MESSAGE_OVERHEAD, count_content, count_text, truncate_text

MODELS = ("claude-sonnet-4-5", "claude-haiku-4-5", "claude-opus-4-1")
ROLES = ("user", "assistant")
BLOCK_TYPES = ("text", "image", "document", "tool_use", "tool_result")
PARAMETERS = frozenset(
    {
        "container", "context_management", "max_tokens", "mcp_servers", "messages", "metadata",
        "model", "service_tier", "stop_sequences", "stream", "system", "temperature", "thinking",
        "tool_choice", "tools", "top_k", "top_p",
    }
)  # fmt: skip
ID_ALPHABET = string.ascii_letters + string.digits


@dataclass(frozen=True)
class MessagesRequest:
    """The parts of a validated request that shape the answer."""

    model: str
    max_tokens: int
    messages: list[dict[str, Any]]
    system: str | list[dict[str, Any]] | None
    stop_sequences: list[str]


def parse_messages_request(body: dict[str, Any]) -> MessagesRequest:
    """Validate a request body as Anthropic does, raising its 400 errors."""
    for name in body:
        if name not in PARAMETERS:
            raise invalid_request(f"{name}: Extra inputs are not permitted")
    model = _required(body, "model", str, "a valid string")
    max_tokens = _required(body, "max_tokens", int, "a valid integer")
    if max_tokens < 1:
        raise invalid_request("max_tokens: Input should be greater than or equal to 1")
    messages = _required(body, "messages", list, "a valid list")
    if not messages:
        raise invalid_request("messages: at least one message is required")
    for index, message in enumerate(messages):
        _check_message(message, f"messages.{index}")
    system = body.get("system")
    if system is not None and not isinstance(system, str):
        _check_blocks(system, "system")
    temperature = body.get("temperature")
    if temperature is not None:
        if isinstance(temperature, bool) or not isinstance(temperature, int | float):
            raise invalid_request("temperature: Input should be a valid number")
        if not 0 <= temperature <= 1:
            bound = "greater than or equal to 0" if temperature < 0 else "less than or equal to 1"
            raise invalid_request(f"temperature: Input should be {bound}")
    stop_sequences = body.get("stop_sequences") or []
    if not isinstance(stop_sequences, list) or not all(
        isinstance(sequence, str) for sequence in stop_sequences
    ):
        raise invalid_request("stop_sequences: Input should be a valid list of strings")
    if body.get("metadata") is not None and not isinstance(body["metadata"], dict):
        raise invalid_request("metadata: Input should be a valid dictionary")
    if body.get("stream"):
        raise invalid_request("stream: Streaming is not supported by the genq simulator.")
    return MessagesRequest(model, max_tokens, messages, system, stop_sequences)


def count_input(messages: list[dict[str, Any]], system: str | list[dict[str, Any]] | None) -> int:
    """Input tokens of validated messages and system prompt."""
    total = count_content(system)
    for message in messages:
        total += MESSAGE_OVERHEAD + count_content(message["content"])
    return total


def generate(
    prompt: str, max_tokens: int, stop_sequences: list[str]
) -> tuple[str, str, str | None]:
    """The reply text, its stop_reason and the stop_sequence that ended it, if one did."""
    text, stop_reason, stop_sequence = reply_text(prompt), "end_turn", None
    hits = [(text.find(sequence), sequence) for sequence in stop_sequences if sequence in text]
    if hits:
        position, stop_sequence = min(hits)
        text, stop_reason = text[:position], "stop_sequence"
    if count_text(text) > max_tokens:
        text, stop_reason, stop_sequence = truncate_text(text, max_tokens), "max_tokens", None
    return text, stop_reason, stop_sequence


@anthropic_endpoint("messages")
async def create_message(request: Request) -> JSONResponse:
    """POST /v1/messages, answered with deterministic text."""
    try:
        body = json.loads(await request.body())
    except ValueError:
        raise invalid_request(
            "There was an issue with the request body: it is not valid JSON."
        ) from None
    if not isinstance(body, dict):
        raise invalid_request("Input should be a valid dictionary")
    message = parse_messages_request(body)
    if message.model not in MODELS:
        raise AnthropicError(404, "not_found_error", f"model: {message.model}")
    input_tokens = count_input(message.messages, message.system)
    await ANTHROPIC.admit(
        request, {"input-tokens": input_tokens, "output-tokens": message.max_tokens}
    )
    prompt = last_user_text(message.messages)
    text, stop_reason, stop_sequence = generate(prompt, message.max_tokens, message.stop_sequences)
    output_tokens = count_text(text)
    request.state.quota.buckets["output-tokens"].take(output_tokens - message.max_tokens)
    request.app.state.stats.record_usage(input_tokens, output_tokens)
    return JSONResponse(
        {
            "id": "msg_" + "".join(secrets.choice(ID_ALPHABET) for _ in range(24)),
            "type": "message",
            "role": "assistant",
            "model": message.model,
            "content": [{"type": "text", "text": text}],
            "stop_reason": stop_reason,
            "stop_sequence": stop_sequence,
            "usage": {
                "input_tokens": input_tokens,
                "output_tokens": output_tokens,
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 0,
                "service_tier": "standard",
            },
        }
    )


routes = [Route("/v1/messages", create_message, methods=["POST"])]


def _required(body: dict[str, Any], name: str, kind: type, described: str) -> Any:
    if name not in body:
        raise invalid_request(f"{name}: Field required")
    value = body[name]
    if isinstance(value, bool) or not isinstance(value, kind):
        raise invalid_request(f"{name}: Input should be {described}")
    return value


def _check_message(message: Any, path: str) -> None:
    if not isinstance(message, dict):
        raise invalid_request(f"{path}: Input should be a valid dictionary")
    if "role" not in message:
        raise invalid_request(f"{path}.role: Field required")
    if message["role"] not in ROLES:
        raise invalid_request(f"{path}.role: Input should be 'user' or 'assistant'")
    if "content" not in message:
        raise invalid_request(f"{path}.content: Field required")
    content = message["content"]
    if not isinstance(content, str):
        _check_blocks(content, f"{path}.content")
    if not content:
        raise invalid_request(
            f"{path}: all messages must have non-empty content except for the optional "
            "final assistant message"
        )


def _check_blocks(blocks: Any, path: str) -> None:
    if not isinstance(blocks, list):
        raise invalid_request(f"{path}: Input should be a valid list")
    for index, block in enumerate(blocks):
        where = f"{path}.{index}"
        if not isinstance(block, dict):
            raise invalid_request(f"{where}: Input should be a valid dictionary")
        if block.get("type") not in BLOCK_TYPES:
            expected = ", ".join(f"'{kind}'" for kind in BLOCK_TYPES)
            raise invalid_request(f"{where}.type: Input should be one of {expected}")
        if block["type"] == "text" and not isinstance(block.get("text"), str):
            raise invalid_request(f"{where}.text: Field required")
