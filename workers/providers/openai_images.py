"""OpenAI images generations (``POST {base_url}/images/generations``)."""

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


class OpenAIImages:
    def __init__(self, route: Route, client: httpx.Client) -> None:
        self.route = route
        self.client = client
        self.url = f"{str(route.base_url).rstrip('/')}/images/generations"

    def run(self, model: str, input: dict[str, Any]) -> ProviderResult:
        response, data = request_json(
            self.client,
            "POST",
            self.url,
            json={**input, "model": model},
            headers=bearer(self.route),
        )
        try:
            images = [dict(item) for item in data["data"]]
            usage = data.get("usage") or {}
            input_tokens = int(usage.get("input_tokens", 0))
        except SHAPE_ERRORS as exc:
            raise invalid_shape(response, exc) from None
        return ProviderResult(
            output={"images": images, "urls": [i["url"] for i in images if i.get("url")]},
            usage={"images": len(images), "input_tokens": input_tokens},
            request_id=request_id_of(response),
            http_status=response.status_code,
            rate_limit_headers=rate_limit_headers(response),
        )
