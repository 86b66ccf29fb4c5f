"""Provider callbacks: ``POST /v1/provider-callbacks/{route}/{job_id}``, the fast path of a
long job. No tenant key: each callback is verified the way its provider signs it
(``infra.provider_signatures``), then only wakes the job's poll (``store.provider_callbacks``).

Statuses, chosen for how providers retry (fal and Replicate retry a callback that does not
get a 2xx):
- 401: not verifiably the provider's (bad or missing signature, a stale timestamp). A
  genuine callback that fails here has met a misconfigured secret or key set; the
  provider's retries give the operator time to fix it.
- 200, nothing done: a replay (the same delivery seen before, remembered in Redis for
  twice the timestamp tolerance), a job that already ended, or one that waits on another
  provider job (an earlier attempt's). Nothing a retry could change, so it is acknowledged
  and retries stop.
- 404: no such job on this route, or a route without callbacks: genq never handed out this
  URL; the provider's bounded retries are harmless and its logs show the wrong URL.
- 409: the job is queued or running, so its provider job is not recorded yet (a callback
  that beat the submit's commit) or it is between attempts: a retry may well match.
Every refusal logs a warning with the route and the job id, never the body or headers.
"""

import logging
from typing import Literal

import httpx
import redis
from fastapi import APIRouter, Request
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from infra import tls
from infra.provider_signatures import TOLERANCE_S, KeySets, Verified, verify_replicate_webhook
from producers.app_state import producer_of
from producers.door import CheckedRoute
from producers.errors import ApiError, ErrorBody
from producers.producer import Producer
from schema.errors import SignatureError
from schema.names import BROKER_NAMESPACE
from schema.routes import FAL_JWKS_URL, Protocol, Route
from store import outbox
from store.provider_callbacks import Wake, wake

logger = logging.getLogger(__name__)

REPLAY_TTL_S = int(2 * TOLERANCE_S)
"""A delivery's timestamp may be up to the tolerance ahead of the clock, so it verifies
for at most twice the tolerance; after that the timestamp check refuses a replay."""
JWKS_TIMEOUT_S = 5.0

router = APIRouter(prefix="/v1", tags=["provider callbacks"], route_class=CheckedRoute)


class CallbackAck(BaseModel):
    """What became of an accepted callback: a poll now, or nothing (and why)."""

    status: Literal["poll", "duplicate", "finished", "mismatch"]


def key_sets() -> KeySets:
    """The fal key sets an app verifies against, fetched without following redirects."""
    client = httpx.Client(
        verify=tls.client_context(), timeout=JWKS_TIMEOUT_S, follow_redirects=False
    )
    return KeySets(client)


@router.post(
    "/provider-callbacks/{route}/{job_id}",
    responses={
        409: {"model": ErrorBody, "description": "The job is not waiting yet; retry later."}
    },
)
async def provider_callback(route: str, job_id: str, request: Request) -> CallbackAck:
    """A provider says a job's provider job changed; a verified callback for a waiting job
    polls it at once."""
    body = await request.body()
    return await run_in_threadpool(_handle, request, route, job_id, body)


def _handle(request: Request, route_name: str, job_id: str, body: bytes) -> CallbackAck:
    producer = producer_of(request)
    route = producer.routes.by_name.get(route_name)
    if route is None or not route.callbacks:
        _refuse(route_name, job_id, "the route takes no callbacks")
        raise ApiError(404, "not_found", f"route {route_name!r} takes no callbacks")
    try:
        verified = _verify(request, route, body)
    except SignatureError as exc:
        _refuse(route_name, job_id, str(exc))
        raise ApiError(401, "unauthorized", "the callback's signature does not verify") from None
    if not _first_delivery(producer, route_name, verified.delivery):
        _refuse(route_name, job_id, "a replayed delivery")
        return CallbackAck(status="duplicate")
    with producer.sessions.begin() as session:
        found, row = wake(session, route_name, job_id, verified.provider_job_id)
    if row is not None:
        outbox.send_after_commit(producer.sessions, producer.broker, [row])
        return CallbackAck(status="poll")
    _refuse(route_name, job_id, found.value)
    if found == Wake.UNKNOWN_JOB:
        raise ApiError(404, "not_found", f"no job {job_id!r} on route {route_name!r}")
    if found == Wake.NOT_WAITING_YET:
        raise ApiError(409, "conflict", "the job is not waiting on its provider yet; retry")
    return CallbackAck(status="finished" if found == Wake.FINISHED else "mismatch")


def _verify(request: Request, route: Route, body: bytes) -> Verified:
    if route.protocol == Protocol.REPLICATE_PREDICTIONS:
        secret = route.webhook_secret()
        if secret is None:
            raise SignatureError(f"{route.webhook_secret_env} is not set")
        return verify_replicate_webhook(request.headers, body, secret.get_secret_value())
    keys: KeySets = request.app.state.fal_key_sets
    return keys.verify_fal(str(route.jwks_url or FAL_JWKS_URL), request.headers, body)


def _first_delivery(producer: Producer, route: str, delivery: str) -> bool:
    """Remember a delivery; False if it was seen before. If Redis cannot say, go ahead:
    a replay then costs one extra poll, which changes nothing."""
    key = f"{BROKER_NAMESPACE}:cb:{route}:{delivery}"
    try:
        return bool(producer.redis.set(key, 1, nx=True, ex=REPLAY_TTL_S))
    except redis.RedisError:
        logger.warning("provider callback: replay check unavailable", exc_info=True)
        return True


def _refuse(route: str, job_id: str, reason: str) -> None:
    logger.warning(
        "provider callback for route %s, job %s: nothing done: %s", route, job_id, reason
    )
