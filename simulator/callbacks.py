"""Sending a provider's callbacks (fal's and Replicate's webhooks) as providers do: in the
background, signed afresh on every try, retried with a doubling back-off on the
simulator's time scale."""

import asyncio
import functools
import ssl
from collections.abc import Callable

import httpx
from starlette.datastructures import State

from simulator.jobs import Job

ATTEMPTS = 10
FIRST_RETRY_S = 15.0
MAX_RETRY_S = 1800.0
WATCH_EVERY_S = 0.05
"""How often a pending delivery rereads the clock, so a test's fake clock is followed."""
DELIVERY_TIMEOUT_S = 10.0


def nap_s(job: Job, now: float) -> float:
    """How long a pending delivery sleeps before rereading the clock: ``WATCH_EVERY_S``, or
    until the job's end when that comes sooner, so a callback is as prompt as a provider's."""
    return min(WATCH_EVERY_S, max(job.finishes_at - now, 0.0))


@functools.cache
def tls() -> ssl.SSLContext:
    """One TLS context for every sender's client: building one per client costs tens of ms
    of CPU, which would stall the simulator's loop at each job's end."""
    return ssl.create_default_context()


async def post(
    state: State,
    client: httpx.AsyncClient,
    url: str,
    body: bytes,
    headers_at: Callable[[int], dict[str, str]],
    attempts: int = ATTEMPTS,
) -> None:
    """POST body to url until a 2xx or ``attempts`` tries, signing each try at its time."""
    for attempt in range(attempts):
        try:
            response = await client.post(url, content=body, headers=headers_at(int(state.clock())))
            if response.is_success:
                return
        except httpx.HTTPError:
            pass
        if attempt + 1 < attempts:
            wait = min(FIRST_RETRY_S * 2**attempt, MAX_RETRY_S) * state.config.time_scale
            await asyncio.sleep(wait)
