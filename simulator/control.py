"""The simulator's own endpoints, under /_sim, for tests to inspect and reset it."""

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


async def get_stats(request: Request) -> JSONResponse:
    """Calls, errors and tokens counted since start or the last reset."""
    return JSONResponse(request.app.state.stats.snapshot())


async def reset(request: Request) -> JSONResponse:
    """Zero the counters and the rate-limit windows, then answer the zeroed stats."""
    request.app.state.stats.clear()
    request.app.state.limits.clear()
    return JSONResponse(request.app.state.stats.snapshot())


routes = [
    Route("/_sim/stats", get_stats, methods=["GET"]),
    Route("/_sim/reset", reset, methods=["POST"]),
]
