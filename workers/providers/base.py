"""What every adapter holds: its route, the route's pooled client and base URL; and what a
protocol that answers in one response is: a request, and a reading of its answer."""

from abc import ABC, abstractmethod
from typing import Any, NamedTuple

import httpx

from schema.routes import Route
from workers.providers.http import json_object, rate_limit_headers, request_id_of, send, send_async
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


class ProviderRequest(NamedTuple):
    method: str
    url: str
    json: dict[str, Any]
    headers: dict[str, str]


class CallAdapter(RouteAdapter, ABC):
    """A protocol whose answer comes in the response to one request (chat, messages,
    images). Its request and the reading of its answer hold no I/O, so the same adapter
    runs on a worker thread (``run``) and on the worker's event loop (``run_async``)."""

    @abstractmethod
    def request(self, model: str, input: dict[str, Any]) -> ProviderRequest:
        """The one request the call makes."""

    @abstractmethod
    def answer(self, response: httpx.Response, data: dict[str, Any]) -> ProviderResult:
        """The result a 2xx JSON answer holds; ``ProviderError`` if it lacks what it must."""

    def run(self, model: str, input: dict[str, Any]) -> ProviderResult:
        """Call the provider once; raise ``ProviderError`` on any failure."""
        method, url, body, headers = self.request(model, input)
        response = send(self.client, method, url, json=body, headers=headers)
        return self.answer(response, json_object(response))

    async def run_async(
        self, client: httpx.AsyncClient, model: str, input: dict[str, Any]
    ) -> ProviderResult:
        """``run`` on ``client``, an event loop's client for the same route."""
        method, url, body, headers = self.request(model, input)
        response = await send_async(client, method, url, json=body, headers=headers)
        return self.answer(response, json_object(response))
