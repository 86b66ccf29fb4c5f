"""OpenAI chat completions (``POST {base_url}/chat/completions``) and every compatible server."""

from typing import Any

import httpx

from schema.routes import Route
from workers.providers.errors import ErrorClass, ProviderError
from workers.providers.http import post_json, rate_limit_headers, request_id_of
from workers.providers.result import ProviderResult


class OpenAIChat:
    def __init__(self, route: Route, client: httpx.Client) -> None:
        self.route = route
        self.client = client
        self.url = f"{str(route.base_url).rstrip('/')}/chat/completions"

    def _headers(self) -> dict[str, str]:
        key = self.route.api_key()
        return {"Authorization": f"Bearer {key.get_secret_value()}"} if key else {}

    def run(self, model: str, input: dict[str, Any]) -> ProviderResult:
        """Call the provider once; raise ``ProviderError`` on any failure."""
        response, data = post_json(
            self.client, self.url, {**input, "model": model}, self._headers()
        )
        request_id = request_id_of(response)
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
        except (KeyError, IndexError, TypeError, AttributeError) as exc:
            raise ProviderError(
                ErrorClass.INVALID_RESPONSE,
                f"chat completion without the expected fields ({type(exc).__name__}: {exc})",
                retryable=True,
                http_status=response.status_code,
                request_id=request_id,
            ) from None
        return ProviderResult(
            output=output,
            usage={
                "prompt_tokens": int(usage.get("prompt_tokens", 0)),
                "completion_tokens": int(usage.get("completion_tokens", 0)),
                "total_tokens": int(usage.get("total_tokens", 0)),
            },
            request_id=request_id,
            http_status=response.status_code,
            rate_limit_headers=rate_limit_headers(response),
        )
