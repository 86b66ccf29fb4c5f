"""The simulator's ASGI app, wiring each protocol's routes to shared state."""

import time
from collections.abc import Callable

from starlette.applications import Starlette
from starlette.exceptions import HTTPException

from simulator import (
    anthropic_messages,
    control,
    fal_queue,
    files,
    google_veo,
    openai_chat,
    openai_images,
    openai_models,
    openai_videos,
    receiver,
    replicate_predictions,
    replicate_webhooks,
    runway_tasks,
)
from simulator.config import SimConfig
from simulator.openai_protocol import invalid_url
from simulator.ratelimit import RateLimits
from simulator.stats import Stats


def create_app(
    config: SimConfig | None = None, clock: Callable[[], float] = time.time
) -> Starlette:
    """A simulator app; its config, stats, rate limits, jobs and hooks live on `app.state`.

    clock, Unix time by default, drives rate-limit refills and job timelines;
    tests pass a fake one to move time without waiting.
    """
    app = Starlette(
        routes=[
            *openai_chat.routes,
            *openai_images.routes,
            *openai_videos.routes,
            *openai_models.routes,
            *anthropic_messages.routes,
            *replicate_predictions.routes,
            *replicate_webhooks.routes,
            *google_veo.routes,
            *runway_tasks.routes,
            *files.routes,
            *control.routes,
            *receiver.routes,
            *fal_queue.routes,
        ],
        exception_handlers={HTTPException: invalid_url},
    )
    app.state.config = config or SimConfig()
    app.state.clock = clock
    app.state.stats = Stats()
    app.state.limits = RateLimits()
    app.state.jobs = {}
    app.state.hooks = receiver.Hooks()
    control.clear_state(app.state)
    return app
