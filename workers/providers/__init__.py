"""Provider adapters: one module per wire protocol, all over httpx.

Sync adapters ``run`` a request to its result; async ones ``submit`` a provider job,
``poll`` it and ``cancel`` it. ``submit`` takes the job's ``callback_url`` when its route
has callbacks on; a provider that cannot call back ignores it.
"""

from typing import Any, Protocol

import httpx

from schema.routes import Protocol as WireProtocol
from schema.routes import Route
from workers.providers.anthropic_messages import AnthropicMessages
from workers.providers.errors import ErrorClass, ProviderError
from workers.providers.fal_queue import FalQueue
from workers.providers.google_veo import GoogleVeo
from workers.providers.openai_chat import OpenAIChat
from workers.providers.openai_images import OpenAIImages
from workers.providers.openai_videos import OpenAIVideos
from workers.providers.replicate_predictions import ReplicatePredictions
from workers.providers.result import AsyncState, PollResult, ProviderResult
from workers.providers.runway_tasks import RunwayTasks


class SyncAdapter(Protocol):
    def run(self, model: str, input: dict[str, Any]) -> ProviderResult: ...


class AsyncAdapter(Protocol):
    def submit(
        self, model: str, input: dict[str, Any], callback_url: str | None = None
    ) -> PollResult: ...
    def poll(self, provider_job_id: str) -> PollResult: ...
    def cancel(self, provider_job_id: str) -> None: ...


Adapter = SyncAdapter | AsyncAdapter

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
    return httpx.Client(
        timeout=httpx.Timeout(route.timeout_s, connect=route.connect_timeout_s),
        limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=32),
        follow_redirects=False,
    )


def adapter_for(route: Route, client: httpx.Client) -> Adapter:
    return ADAPTERS[route.protocol](route, client)  # type: ignore[no-any-return]


__all__ = [
    "AsyncAdapter",
    "AsyncState",
    "ErrorClass",
    "PollResult",
    "ProviderError",
    "ProviderResult",
    "SyncAdapter",
    "adapter_for",
    "make_client",
]
