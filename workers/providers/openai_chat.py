"""OpenAI chat completions (``POST {base_url}/chat/completions``) and every compatible server."""

from typing import Any

from workers.providers.base import RouteAdapter
from workers.providers.http import (
    SHAPE_ERRORS,
    bearer,
    invalid_shape,
    request_json,
)
from workers.providers.result import ProviderResult


class OpenAIChat(RouteAdapter):
    def run(self, model: str, input: dict[str, Any]) -> ProviderResult:
        """Call the provider once; raise ``ProviderError`` on any failure."""
        response, data = request_json(
            self.client,
            "POST",
            f"{self.base}/chat/completions",
            json={**input, "model": model},
            headers=bearer(self.route),
        )
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
