"""Replicate's webhooks: a prediction created with `webhook` POSTs itself there as it moves.

`webhook_events_filter` picks the events (default all): `start` once it starts, `logs` when
its logs grow, `output` when it has output, `completed` when it ends (succeeded, failed or
canceled). Each POST's body is the prediction as GET /v1/predictions/{id} shows it at that
moment, signed as Replicate signs (Standard Webhooks): `webhook-id` (`msg_…`),
`webhook-timestamp` (Unix seconds, the app's clock) and `webhook-signature`
(`v1,<base64 HMAC-SHA256 of "id.timestamp.body">`) with the account's signing secret,
served like Replicate's at GET /v1/webhooks/default/secret as `{"key": "whsec_…"}`.
As at Replicate, `completed` is retried when it fails (here 10 times, backing off on a
schedule shrunk by the time scale); intermediate events are sent once.
"""

import asyncio
import base64
import hashlib
import hmac
import json
import secrets
from collections.abc import Callable
from typing import Any

import httpx
from starlette.datastructures import State
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from simulator.callbacks import ATTEMPTS, DELIVERY_TIMEOUT_S, nap_s, post, tls
from simulator.jobs import FINAL, Job, Phase
from simulator.replicate_protocol import invalid_fields, replicate_endpoint

EVENTS = ("start", "output", "logs", "completed")
BodyOf = Callable[[Job, float], dict[str, Any]]
"""Renders a prediction's webhook body at an instant."""


def signing_secret(state: State) -> str:
    """The account's webhook signing secret (`whsec_` + base64 of 32 bytes), made on first use."""
    secret = getattr(state, "replicate_webhook_secret", None)
    if secret is None:
        key = base64.b64encode(secrets.token_bytes(32)).decode()
        secret = state.replicate_webhook_secret = f"whsec_{key}"
    return secret


def signed_headers(secret: str, message_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The Standard Webhooks headers of one delivery of body."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{message_id}.{timestamp}.".encode() + body
    signature = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    return {
        "content-type": "application/json",
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": f"v1,{signature}",
    }


def events_filter(value: Any) -> frozenset[str]:
    """The events a `webhook_events_filter` asks for, or Replicate's 422."""
    if value is None:
        return frozenset(EVENTS)
    if not isinstance(value, list) or any(event not in EVENTS for event in value):
        message = f"webhook_events_filter must be a list of {', '.join(EVENTS)}"
        raise invalid_fields(
            [{"type": "enum", "field": "webhook_events_filter", "description": message}]
        )
    return frozenset(value)


def schedule(request: Request, job: Job, url: str, events: frozenset[str], body_of: BodyOf) -> None:
    """Send the prediction's events to url as they happen, in the background."""
    state = request.app.state
    tasks: set[asyncio.Task[None]] = getattr(state, "replicate_webhook_tasks", None) or set()
    state.replicate_webhook_tasks = tasks
    task = asyncio.get_running_loop().create_task(_follow(state, job, url, events, body_of))
    tasks.add(task)
    task.add_done_callback(tasks.discard)


async def _follow(
    state: State, job: Job, url: str, events: frozenset[str], body_of: BodyOf
) -> None:
    started, logs = False, ""
    async with httpx.AsyncClient(timeout=DELIVERY_TIMEOUT_S, verify=tls()) as client:
        while True:
            now = state.clock()
            body = body_of(job, now)
            if job.phase(now) in FINAL:
                break
            if not started and job.phase(now) is Phase.RUNNING:
                started = True
                if "start" in events:
                    await _send(state, client, url, body, attempts=1)
            elif "logs" in events and started and body["logs"] != logs:
                await _send(state, client, url, body, attempts=1)
            logs = body["logs"]
            await asyncio.sleep(nap_s(job, now))
        if "completed" in events:
            await _send(state, client, url, body, attempts=ATTEMPTS)
        elif "output" in events and body["output"] is not None:
            await _send(state, client, url, body, attempts=1)


async def _send(
    state: State, client: httpx.AsyncClient, url: str, body: dict[str, Any], attempts: int
) -> None:
    raw = json.dumps(body).encode()
    message_id = f"msg_{secrets.token_hex(12)}"
    secret = signing_secret(state)
    await post(
        state, client, url, raw, lambda at: signed_headers(secret, message_id, at, raw), attempts
    )


@replicate_endpoint("webhooks.default.secret")
async def get_secret(request: Request) -> JSONResponse:
    """GET /v1/webhooks/default/secret: the key the account's webhooks are signed with."""
    return JSONResponse({"key": signing_secret(request.app.state)})


routes = [Route("/v1/webhooks/default/secret", get_secret, methods=["GET"])]
