"""OpenAI chat completions (``POST {base_url}/chat/completions``) and every compatible server."""

from typing import Any

import httpx

from schema.routes import Route
from workers.providers.http import (
    SHAPE_ERRORS,
    bearer,
    invalid_shape,
    rate_limit_headers,
    request_id_of,
    request_json,
)
from workers.providers.result import ProviderResult


class OpenAIChat:
    def __init__(self, route: Route, client: httpx.Client) -> None:
        self.route = route
        self.client = client
        self.url = f"{str(route.base_url).rstrip('/')}/chat/completions"

    def run(self, model: str, input: dict[str, Any]) -> ProviderResult:
        """Call the provider once; raise ``ProviderError`` on any failure."""
        response, data = request_json(
            self.client,
            "POST",
            self.url,
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
        return ProviderResult(
            output=output,
            usage={
                "input_tokens": input_tokens,
                "output_tokens": output_tokens,
                "total_tokens": input_tokens + output_tokens,
            },
            request_id=request_id_of(response),
            http_status=response.status_code,
            rate_limit_headers=rate_limit_headers(response),
        )
