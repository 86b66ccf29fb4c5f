"""OpenAI's chat completions endpoint, POST /v1/chat/completions."""

import secrets
import string
import time
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from simulator.openai_models import CHAT_MODELS, MODELS
from simulator.openai_protocol import (
    OPENAI,
    OpenAIError,
    decimal_param,
    empty_array,
    integer_param,
    invalid_request,
    invalid_type,
    invalid_value,
    missing,
    model_not_found,
    openai_endpoint,
    read_json_object,
    required_string,
)
from simulator.replies import last_user_text, reply_text
from simulator.tokens import count_messages, count_text, truncate_text

ROLES = ("system", "developer", "user", "assistant", "tool")
PART_TYPES = ("text", "image_url", "input_audio", "file", "refusal")
MAX_CHOICES = 8
PARAMETERS = frozenset(
    {
        "audio", "frequency_penalty", "function_call", "functions", "logit_bias", "logprobs",
        "max_completion_tokens", "max_tokens", "messages", "metadata", "modalities", "model", "n",
        "parallel_tool_calls", "prediction", "presence_penalty", "prompt_cache_key",
        "reasoning_effort", "response_format", "safety_identifier", "seed", "service_tier",
        "stop", "store", "stream", "stream_options", "temperature", "tool_choice", "tools",
        "top_logprobs", "top_p", "user", "verbosity", "web_search_options",
    }
)  # fmt: skip
"""Every request argument OpenAI accepts; anything else is rejected, as OpenAI does."""
ID_ALPHABET = string.ascii_letters + string.digits
NOT_A_CHAT_MODEL = (
    "This is not a chat model and thus not supported in the v1/chat/completions endpoint. "
    "Did you mean to use v1/completions?"
)


@dataclass(frozen=True)
class ChatRequest:
    """The parts of a validated request that shape the answer."""

    model: str
    messages: list[dict[str, Any]]
    max_tokens: int | None
    n: int


def parse_chat_request(body: dict[str, Any]) -> ChatRequest:
    """Validate a request body as OpenAI does, raising its 400 errors."""
    for name in body:
        if name not in PARAMETERS:
            raise invalid_request(f"Unrecognized request argument supplied: {name}")
    model = required_string(body, "model", "model")
    messages = body.get("messages")
    if messages is None:
        raise missing("messages")
    if not isinstance(messages, list):
        raise invalid_type("messages", "an array", messages)
    if not messages:
        raise empty_array("messages")
    for index, message in enumerate(messages):
        _check_message(message, f"messages[{index}]")
    stream = body.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise invalid_type("stream", "a boolean", stream)
    if stream:
        raise invalid_request(
            "Streaming is not supported by the genq simulator; send 'stream': false.",
            param="stream",
            code="unsupported_value",
        )
    decimal_param(body, "temperature", 0, 2)
    max_tokens = integer_param(body, "max_tokens", 1)
    max_completion_tokens = integer_param(body, "max_completion_tokens", 1)
    n = integer_param(body, "n", 1, MAX_CHOICES)
    return ChatRequest(model, messages, max_completion_tokens or max_tokens, n or 1)


def completion_budget(prompt_tokens: int, max_tokens: int | None, context_tokens: int) -> int:
    """Tokens each choice may use, or the context_length_exceeded error."""
    limit = f"This model's maximum context length is {context_tokens} tokens."
    if max_tokens is None:
        if prompt_tokens < context_tokens:
            return context_tokens - prompt_tokens
        detail = f"However, your messages resulted in {prompt_tokens} tokens."
        advice = "Please reduce the length of the messages."
    elif prompt_tokens + max_tokens <= context_tokens:
        return max_tokens
    else:
        detail = (
            f"However, you requested {prompt_tokens + max_tokens} tokens "
            f"({prompt_tokens} in the messages, {max_tokens} in the completion)."
        )
        advice = "Please reduce the length of the messages or completion."
    raise invalid_request(
        f"{limit} {detail} {advice}", param="messages", code="context_length_exceeded"
    )


@openai_endpoint("chat.completions")
async def create_chat_completion(request: Request) -> JSONResponse:
    """POST /v1/chat/completions, answered with deterministic text."""
    chat = parse_chat_request(await read_json_object(request))
    if chat.model not in MODELS:
        raise model_not_found(chat.model)
    if chat.model not in CHAT_MODELS:
        raise OpenAIError(404, NOT_A_CHAT_MODEL, param="model")
    state = request.app.state
    prompt_tokens = count_messages(chat.messages)
    budget = completion_budget(prompt_tokens, chat.max_tokens, state.config.max_context_tokens)
    estimate = prompt_tokens + (chat.max_tokens or 0) * chat.n
    await OPENAI.admit(request, {"tokens": estimate})
    prompt = last_user_text(chat.messages)
    choices = [_choice(index, reply_text(prompt, index), budget) for index in range(chat.n)]
    completion_tokens = sum(count_text(choice["message"]["content"]) for choice in choices)
    state.stats.record_usage(prompt_tokens, completion_tokens)
    request.state.quota.buckets["tokens"].take(prompt_tokens + completion_tokens - estimate)
    return JSONResponse(
        {
            "id": "chatcmpl-" + "".join(secrets.choice(ID_ALPHABET) for _ in range(29)),
            "object": "chat.completion",
            "created": int(time.time()),
            "model": chat.model,
            "choices": choices,
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
                "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
                "completion_tokens_details": {
                    "reasoning_tokens": 0,
                    "audio_tokens": 0,
                    "accepted_prediction_tokens": 0,
                    "rejected_prediction_tokens": 0,
                },
            },
            "service_tier": "default",
            "system_fingerprint": "fp_genqsim",
        }
    )


routes = [Route("/v1/chat/completions", create_chat_completion, methods=["POST"])]


def _choice(index: int, text: str, budget: int) -> dict[str, Any]:
    finish_reason = "stop"
    if count_text(text) > budget:
        text, finish_reason = truncate_text(text, budget), "length"
    return {
        "index": index,
        "message": {"role": "assistant", "content": text, "refusal": None, "annotations": []},
        "logprobs": None,
        "finish_reason": finish_reason,
    }


def _check_message(message: Any, param: str) -> None:
    if not isinstance(message, dict):
        raise invalid_type(param, "an object", message)
    role = required_string(message, "role", f"{param}.role")
    if role not in ROLES:
        raise invalid_value(f"{param}.role", role, ROLES)
    if role == "tool":
        required_string(message, "tool_call_id", f"{param}.tool_call_id")
    content = message.get("content")
    if content is None:
        if role != "assistant":
            raise missing(f"{param}.content")
    elif isinstance(content, list):
        if not content:
            raise empty_array(f"{param}.content")
        for index, part in enumerate(content):
            _check_part(part, f"{param}.content[{index}]")
    elif not isinstance(content, str):
        raise invalid_type(f"{param}.content", "one of a string or array of objects", content)


def _check_part(part: Any, param: str) -> None:
    if not isinstance(part, dict):
        raise invalid_type(param, "an object", part)
    kind = required_string(part, "type", f"{param}.type")
    if kind not in PART_TYPES:
        raise invalid_value(f"{param}.type", kind, PART_TYPES)
    if kind == "text":
        required_string(part, "text", f"{param}.text")
