"""Provider adapters: one module per wire protocol, all over httpx."""

from typing import Any, Protocol

import httpx

from schema.routes import Protocol as WireProtocol
from schema.routes import Route
from workers.providers.errors import ErrorClass, ProviderError
from workers.providers.openai_chat import OpenAIChat
from workers.providers.result import ProviderResult


class Adapter(Protocol):
    def run(self, model: str, input: dict[str, Any]) -> ProviderResult: ...


ADAPTERS: dict[WireProtocol, type[OpenAIChat]] = {WireProtocol.OPENAI_CHAT: OpenAIChat}


def make_client(route: Route, max_connections: int) -> httpx.Client:
    """One pooled client per route, with the route's timeouts and no redirects."""
    return httpx.Client(
        timeout=httpx.Timeout(route.timeout_s, connect=route.connect_timeout_s),
        limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=32),
        follow_redirects=False,
    )


def adapter_for(route: Route, client: httpx.Client) -> Adapter:
    return ADAPTERS[route.protocol](route, client)


__all__ = ["Adapter", "ErrorClass", "ProviderError", "ProviderResult", "adapter_for", "make_client"]
