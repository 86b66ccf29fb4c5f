"""Provider adapters: one module per wire protocol, all over httpx.

Call adapters ``run`` a request to its result, on a worker thread or (``run_async``) on the
worker's event loop; async ones ``submit`` a provider job, ``poll`` it and ``cancel`` it.
``submit`` takes the job's ``callback_url`` when its route has callbacks on; a provider
that cannot call back ignores it.
"""

from http.cookiejar import CookieJar
from typing import Any, Protocol

import httpx

from infra import tls
from schema.routes import Protocol as WireProtocol
from schema.routes import Route
from workers.providers.anthropic_messages import AnthropicMessages
from workers.providers.asyncio_network import AsyncioTransport
from workers.providers.base import CallAdapter
from workers.providers.errors import ErrorClass, ProviderError
from workers.providers.fal_queue import FalQueue
from workers.providers.google_veo import GoogleVeo
from workers.providers.openai_chat import OpenAIChat
from workers.providers.openai_images import OpenAIImages
from workers.providers.openai_videos import OpenAIVideos
from workers.providers.replicate_predictions import ReplicatePredictions
from workers.providers.result import AsyncState, PollResult, ProviderResult
from workers.providers.runway_tasks import RunwayTasks


class AsyncAdapter(Protocol):
    def submit(
        self, model: str, input: dict[str, Any], callback_url: str | None = None
    ) -> PollResult: ...
    def poll(self, provider_job_id: str) -> PollResult: ...
    def cancel(self, provider_job_id: str) -> None: ...


Adapter = CallAdapter | AsyncAdapter

ADAPTERS: dict[WireProtocol, Any] = {
    WireProtocol.OPENAI_CHAT: OpenAIChat,
    WireProtocol.ANTHROPIC_MESSAGES: AnthropicMessages,
    WireProtocol.OPENAI_IMAGES: OpenAIImages,
    WireProtocol.REPLICATE_PREDICTIONS: ReplicatePredictions,
    WireProtocol.OPENAI_VIDEOS: OpenAIVideos,
    WireProtocol.GOOGLE_VEO: GoogleVeo,
    WireProtocol.FAL_QUEUE: FalQueue,
    WireProtocol.RUNWAY_TASKS: RunwayTasks,
}


def make_client(route: Route, max_connections: int) -> httpx.Client:
    """One pooled client per route, with the route's timeouts and no redirects."""
    return httpx.Client(**client_options(route, max_connections))


def make_async_client(route: Route, max_connections: int) -> httpx.AsyncClient:
    """``make_client`` for an event loop, its connections on asyncio's own transports."""
    options = client_options(route, max_connections)
    transport = AsyncioTransport(options["verify"], options["limits"])
    return httpx.AsyncClient(transport=transport, **options)


class NoCookies(CookieJar):
    """A jar that keeps nothing. A route's client serves every tenant's calls, so a cookie
    a provider set in one answer would ride on the next tenant's request; each call
    stands alone, as the key in its header says who it is for."""

    def extract_cookies(self, response: Any, request: Any) -> None:
        return None


def client_options(route: Route, max_connections: int) -> dict[str, Any]:
    """Connections kept alive for every call the pool may hold at once, so a full pool
    does not open and close one per call; no cookies kept between calls."""
    return {
        "cookies": NoCookies(),
        "timeout": httpx.Timeout(route.timeout_s, connect=route.connect_timeout_s),
        "limits": httpx.Limits(
            max_connections=max_connections, max_keepalive_connections=max_connections
        ),
        "follow_redirects": False,
        "verify": tls.client_context(),
    }


def adapter_for(route: Route, client: httpx.Client) -> Adapter:
    return ADAPTERS[route.protocol](route, client)  # type: ignore[no-any-return]


__all__ = [
    "AsyncAdapter",
    "AsyncState",
    "CallAdapter",
    "ErrorClass",
    "PollResult",
    "ProviderError",
    "ProviderResult",
    "adapter_for",
    "client_options",
    "make_async_client",
    "make_client",
]
