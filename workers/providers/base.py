"""What every adapter holds: its route, the route's pooled client and base URL."""

from typing import Any

import httpx

from schema.routes import Route
from workers.providers.http import rate_limit_headers, request_id_of
from workers.providers.result import ProviderResult


class RouteAdapter:
    def __init__(self, route: Route, client: httpx.Client) -> None:
        self.route = route
        self.client = client
        self.base = str(route.base_url).rstrip("/")

    @staticmethod
    def result(
        response: httpx.Response, output: dict[str, Any], usage: dict[str, float]
    ) -> ProviderResult:
        """The one result shape, with what the answer's headers said."""
        return ProviderResult(
            output=output,
            usage=usage,
            request_id=request_id_of(response),
            http_status=response.status_code,
            rate_limit_headers=rate_limit_headers(response),
        )
