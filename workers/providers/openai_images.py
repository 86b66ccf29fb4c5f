"""OpenAI images generations (``POST {base_url}/images/generations``)."""

from typing import Any

import httpx

from workers.providers.base import CallAdapter, ProviderRequest
from workers.providers.http import SHAPE_ERRORS, bearer, invalid_shape
from workers.providers.result import ProviderResult


class OpenAIImages(CallAdapter):
    def request(self, model: str, input: dict[str, Any]) -> ProviderRequest:
        url = f"{self.base}/images/generations"
        return ProviderRequest("POST", url, {**input, "model": model}, bearer(self.route))

    def answer(self, response: httpx.Response, data: dict[str, Any]) -> ProviderResult:
        try:
            images = [dict(item) for item in data["data"]]
            usage = data.get("usage") or {}
            input_tokens = int(usage.get("input_tokens", 0))
        except SHAPE_ERRORS as exc:
            raise invalid_shape(response, exc) from None
        return self.result(
            response,
            {"images": images, "urls": [i["url"] for i in images if i.get("url")]},
            {"images": len(images), "input_tokens": input_tokens},
        )
