"""fal's webhooks: when a request submitted with `fal_webhook` completes, POST its outcome there.

Signed as fal signs them, with the simulator's own ED25519 key: `X-Fal-Webhook-Request-Id`,
`-User-Id`, `-Timestamp` (Unix seconds, from the app's clock) and `-Signature` (hex), over
"request id, user id, timestamp, sha256 hex of the body", joined by newlines. The public key
is served as a JWKS at GET /_sim/fal/jwks.json, as fal serves its own at
https://rest.alpha.fal.ai/.well-known/jwks.json. A failed delivery is retried
(fal: 10 times over 2 hours; here on a schedule shrunk by the time scale).
"""

import asyncio
import base64
import hashlib
import json
from collections.abc import Callable
from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from starlette.datastructures import State
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from simulator.callbacks import DELIVERY_TIMEOUT_S, nap_s, post, tls
from simulator.jobs import FINAL, Job

BodyOf = Callable[[Job, float], dict[str, Any]]
"""Renders a completed job's webhook body at an instant."""


def signing_key(state: State) -> Ed25519PrivateKey:
    """The simulator's webhook signing key, made on first use."""
    key = getattr(state, "fal_signing_key", None)
    if key is None:
        key = state.fal_signing_key = Ed25519PrivateKey.generate()
    return key


def key_id(key: Ed25519PrivateKey) -> str:
    """A stable id for key: the start of its public key's sha256."""
    return hashlib.sha256(_public_bytes(key)).hexdigest()[:16]


def jwks(key: Ed25519PrivateKey) -> dict[str, Any]:
    """The JSON Web Key Set that publishes key's public half."""
    x = base64.urlsafe_b64encode(_public_bytes(key)).rstrip(b"=").decode()
    jwk = {"kty": "OKP", "crv": "Ed25519", "x": x, "kid": key_id(key), "alg": "EdDSA", "use": "sig"}
    return {"keys": [jwk]}


def user_id(api_key: str) -> str:
    """The account id fal would name for an API key."""
    return "sim-" + hashlib.sha256(api_key.encode()).hexdigest()[:12]


def signed_headers(
    key: Ed25519PrivateKey, request_id: str, user: str, timestamp: int, body: bytes
) -> dict[str, str]:
    """The headers of one webhook delivery of body."""
    message = "\n".join([request_id, user, str(timestamp), hashlib.sha256(body).hexdigest()])
    return {
        "content-type": "application/json",
        "x-fal-webhook-request-id": request_id,
        "x-fal-webhook-user-id": user,
        "x-fal-webhook-timestamp": str(timestamp),
        "x-fal-webhook-signature": key.sign(message.encode()).hex(),
    }


def schedule(request: Request, job: Job, url: str, api_key: str, body_of: BodyOf) -> None:
    """Deliver job's outcome, as body_of renders it, to url once it completes, in the
    background."""
    state = request.app.state
    tasks: set[asyncio.Task[None]] = getattr(state, "fal_webhook_tasks", None) or set()
    state.fal_webhook_tasks = tasks
    delivery = _deliver(state, job, url, user_id(api_key), body_of)
    task = asyncio.get_running_loop().create_task(delivery)
    tasks.add(task)
    task.add_done_callback(tasks.discard)


async def _deliver(state: State, job: Job, url: str, user: str, body_of: BodyOf) -> None:
    while job.phase(now := state.clock()) not in FINAL:
        await asyncio.sleep(nap_s(job, now))
    body = json.dumps(body_of(job, state.clock())).encode()
    async with httpx.AsyncClient(timeout=DELIVERY_TIMEOUT_S, verify=tls()) as client:
        await post(
            state,
            client,
            url,
            body,
            lambda at: signed_headers(signing_key(state), job.id, user, at, body),
        )


async def get_jwks(request: Request) -> JSONResponse:
    """GET /_sim/fal/jwks.json: the key the simulator signs fal webhooks with."""
    return JSONResponse(jwks(signing_key(request.app.state)))


routes = [Route("/_sim/fal/jwks.json", get_jwks, methods=["GET"])]


def _public_bytes(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
