"""OpenAI chat completions (``POST {base_url}/chat/completions``) and every compatible server."""

from typing import Any

import httpx

from workers.providers.base import CallAdapter, ProviderRequest
from workers.providers.http import SHAPE_ERRORS, bearer, invalid_shape
from workers.providers.result import ProviderResult


class OpenAIChat(CallAdapter):
    def request(self, model: str, input: dict[str, Any]) -> ProviderRequest:
        url = f"{self.base}/chat/completions"
        return ProviderRequest("POST", url, {**input, "model": model}, bearer(self.route))

    def answer(self, response: httpx.Response, data: dict[str, Any]) -> ProviderResult:
        try:
            choices = [
                {
                    "index": choice.get("index", i),
                    "message": choice["message"],
                    "finish_reason": choice.get("finish_reason"),
                }
                for i, choice in enumerate(data["choices"])
            ]
            usage = data.get("usage") or {}
            output = {
                "text": choices[0]["message"].get("content"),
                "finish_reason": choices[0]["finish_reason"],
                "choices": choices,
            }
            input_tokens = int(usage.get("prompt_tokens", 0))
            output_tokens = int(usage.get("completion_tokens", 0))
        except SHAPE_ERRORS as exc:
            raise invalid_shape(response, exc) from None
        return self.result(
            response,
            output,
            {
                "input_tokens": input_tokens,
                "output_tokens": output_tokens,
                "total_tokens": input_tokens + output_tokens,
            },
        )
