"""fal webhooks from the simulator, checked by genq's verifier: valid, tampered, stale, unknown."""

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from infra.provider_signatures import fetch_jwks, verify_fal_webhook
from schema.errors import SignatureError
from simulator import SimConfig, SimServer
from simulator.fal_webhooks import jwks
from simulator.server import ThreadedServer
from tests.helpers import FakeClock
from tests.waiting import eventually

APP = "fal-ai/veo3/fast"


class Receiver:
    """Keeps each POST's headers and raw body; answers the scripted statuses, then 200."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.statuses: list[int] = []
        self.app = Starlette(routes=[Route("/hook", self.receive, methods=["POST"])])

    async def receive(self, request: Request) -> JSONResponse:
        self.received.append((dict(request.headers), await request.body()))
        return JSONResponse({}, status_code=self.statuses.pop(0) if self.statuses else 200)


@pytest.fixture(scope="module")
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(scope="module")
def sim(clock: FakeClock) -> Iterator[SimServer]:
    config = SimConfig(fixed_duration_s=100, time_scale=0.001)
    with SimServer(config, clock=clock) as server:
        yield server


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, str]]:
    receiver = Receiver()
    with ThreadedServer(receiver.app) as server:
        yield receiver, f"{server.url}/hook"


@pytest.fixture
def keys(sim: SimServer) -> dict[str, Any]:
    with httpx.Client() as client:
        return fetch_jwks(client, f"{sim.url}/_sim/fal/jwks.json")


def delivered(
    sim: SimServer, clock: FakeClock, receiver: tuple[Receiver, str], prompt: str, count: int = 1
) -> list[tuple[dict[str, str], bytes]]:
    hooks, url = receiver
    response = httpx.post(
        f"{sim.url}/fal/{APP}",
        params={"fal_webhook": url},
        json={"prompt": prompt},
        headers={"Authorization": "Key fal-sim-key"},
    )
    response.raise_for_status()
    clock.advance(1)
    return eventually(lambda: hooks.received, lambda got: len(got) >= count)


def test_a_completed_request_posts_a_verifiable_ok_webhook(sim, clock, receiver, keys) -> None:
    ((headers, body),) = delivered(sim, clock, receiver, "waves")

    request_id = verify_fal_webhook(headers, body, keys, now=clock())

    event = json.loads(body)
    assert (event["request_id"], event["gateway_request_id"]) == (request_id, request_id)
    assert event["status"] == "OK"
    assert event["payload"]["video"]["content_type"] == "video/mp4"
    assert headers["x-fal-webhook-user-id"].startswith("sim-")
    assert keys["keys"][0]["kty"] == "OKP" and keys["keys"][0]["crv"] == "Ed25519"


def test_a_failed_request_posts_a_verifiable_error_webhook(sim, clock, receiver, keys) -> None:
    ((headers, body),) = delivered(sim, clock, receiver, "please fail")

    verify_fal_webhook(headers, body, keys, now=clock())

    event = json.loads(body)
    assert (event["status"], event["payload"]) == ("ERROR", {"detail": event["error"]})


def test_a_refused_delivery_is_retried_and_signed_again(sim, clock, receiver, keys) -> None:
    receiver[0].statuses = [500]

    first, second = delivered(sim, clock, receiver, "waves", count=2)

    assert first[1] == second[1]
    assert verify_fal_webhook(*second, keys, now=clock())


def test_a_tampered_body_does_not_verify(sim, clock, receiver, keys) -> None:
    ((headers, body),) = delivered(sim, clock, receiver, "waves")

    with pytest.raises(SignatureError, match="no key"):
        verify_fal_webhook(headers, body.replace(b"OK", b"KO"), keys, now=clock())
    with pytest.raises(SignatureError, match="no key"):
        other_id = {**headers, "x-fal-webhook-request-id": "someone-else"}
        verify_fal_webhook(other_id, body, keys, now=clock())


def test_a_stale_timestamp_does_not_verify(sim, clock, receiver, keys) -> None:
    ((headers, body),) = delivered(sim, clock, receiver, "waves")

    with pytest.raises(SignatureError, match="tolerance"):
        verify_fal_webhook(headers, body, keys, now=clock() + 301)
    assert verify_fal_webhook(headers, body, keys, now=clock() + 299)


def test_a_signature_by_a_key_not_in_the_set_does_not_verify(sim, clock, receiver) -> None:
    ((headers, body),) = delivered(sim, clock, receiver, "waves")

    with pytest.raises(SignatureError, match="no key"):
        verify_fal_webhook(headers, body, jwks(Ed25519PrivateKey.generate()), now=clock())


def test_missing_or_malformed_headers_do_not_verify(sim, clock, receiver, keys) -> None:
    ((headers, body),) = delivered(sim, clock, receiver, "waves")
    unsigned = {k: v for k, v in headers.items() if k != "x-fal-webhook-signature"}

    with pytest.raises(SignatureError, match="missing"):
        verify_fal_webhook(unsigned, body, keys, now=clock())
    with pytest.raises(SignatureError, match="malformed"):
        verify_fal_webhook({**headers, "x-fal-webhook-signature": "zz"}, body, keys, now=clock())
