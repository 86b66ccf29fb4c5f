"""The simulator's ASGI app, wiring each protocol's routes to shared state."""

from starlette.applications import Starlette
from starlette.exceptions import HTTPException

from simulator import control, openai_chat, openai_models
from simulator.config import SimConfig
from simulator.openai_protocol import invalid_url
from simulator.ratelimit import RateLimits
from simulator.stats import Stats


def create_app(config: SimConfig | None = None) -> Starlette:
    """A simulator app; its config, stats and rate-limit windows live on `app.state`."""
    app = Starlette(
        routes=[*openai_chat.routes, *openai_models.routes, *control.routes],
        exception_handlers={HTTPException: invalid_url},
    )
    app.state.config = config or SimConfig()
    app.state.stats = Stats()
    app.state.limits = RateLimits()
    return app
