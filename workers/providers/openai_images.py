"""OpenAI images generations (``POST {base_url}/images/generations``)."""

from typing import Any

from workers.providers.base import RouteAdapter
from workers.providers.http import (
    SHAPE_ERRORS,
    bearer,
    invalid_shape,
    request_json,
)
from workers.providers.result import ProviderResult


class OpenAIImages(RouteAdapter):
    def run(self, model: str, input: dict[str, Any]) -> ProviderResult:
        response, data = request_json(
            self.client,
            "POST",
            f"{self.base}/images/generations",
            json={**input, "model": model},
            headers=bearer(self.route),
        )
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
