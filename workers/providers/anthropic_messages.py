"""Anthropic messages (``POST {base_url}/v1/messages``): ``x-api-key``, ``anthropic-version``,
content blocks, stop reasons, and 529 when overloaded (retryable by the taxonomy)."""

from typing import Any

import httpx

from workers.providers.base import CallAdapter, ProviderRequest
from workers.providers.http import SHAPE_ERRORS, invalid_shape
from workers.providers.result import ProviderResult

FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}


class AnthropicMessages(CallAdapter):
    def _headers(self) -> dict[str, str]:
        headers = {"anthropic-version": self.route.anthropic_version}
        if key := self.route.api_key():
            headers["x-api-key"] = key.get_secret_value()
        return headers

    def request(self, model: str, input: dict[str, Any]) -> ProviderRequest:
        url = f"{self.base}/v1/messages"
        return ProviderRequest("POST", url, {**input, "model": model}, self._headers())

    def answer(self, response: httpx.Response, data: dict[str, Any]) -> ProviderResult:
        try:
            blocks = data["content"]
            text = "".join(block["text"] for block in blocks if block.get("type") == "text")
            stop_reason = data.get("stop_reason")
            input_tokens = int(data["usage"]["input_tokens"])
            output_tokens = int(data["usage"]["output_tokens"])
        except SHAPE_ERRORS as exc:
            raise invalid_shape(response, exc) from None
        return self.result(
            response,
            {
                "text": text,
                "finish_reason": FINISH_REASONS.get(stop_reason or "", stop_reason),
                "stop_reason": stop_reason,
                "content": blocks,
            },
            {
                "input_tokens": input_tokens,
                "output_tokens": output_tokens,
                "total_tokens": input_tokens + output_tokens,
            },
        )
