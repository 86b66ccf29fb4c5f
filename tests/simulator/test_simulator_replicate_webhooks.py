"""The simulator's Replicate webhooks: the events a filter asks for, signed with the account's
secret as Standard Webhooks, verified with the stock library; retries of `completed`."""

import json
import time
from collections.abc import Iterator

import httpx
import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from simulator import SimConfig, SimServer
from simulator.server import ThreadedServer
from tests.helpers import FakeClock
from tests.infra.test_fal_webhooks import Receiver
from tests.waiting import eventually


@pytest.fixture(scope="module")
def clock() -> FakeClock:
    """Starts at the real time: the stock verifier refuses timestamps 5 minutes off."""
    clock = FakeClock()
    clock.now = time.time()
    return clock


@pytest.fixture(scope="module")
def sim(clock: FakeClock) -> Iterator[SimServer]:
    with SimServer(SimConfig(fixed_duration_s=100, time_scale=0.001), clock=clock) as server:
        yield server


@pytest.fixture
def api(sim: SimServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sim.url, headers={"Authorization": "Bearer r8_test"}) as api:
        yield api


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, str]]:
    receiver = Receiver()
    with ThreadedServer(receiver.app) as server:
        yield receiver, f"{server.url}/hook"


def create(api: httpx.Client, url: str, prompt: str = "a fox", **fields: object) -> dict:
    body = {"input": {"prompt": prompt}, "webhook": url, **fields}
    response = api.post("/v1/models/acme/painter/predictions", json=body)
    assert response.status_code == 201, response.text
    return response.json()


def test_the_secret_is_served_as_replicate_serves_it(api) -> None:
    key = api.get("/v1/webhooks/default/secret").json()["key"]

    assert key.startswith("whsec_")
    assert api.get("/v1/webhooks/default/secret").json() == {"key": key}
    assert httpx.get(f"{api.base_url}/v1/webhooks/default/secret").status_code == 401


def test_a_completed_filter_posts_one_verifiable_prediction(api, clock, receiver) -> None:
    hooks, url = receiver
    prediction = create(api, url, webhook_events_filter=["completed"])
    clock.advance(200)

    ((headers, body),) = eventually(lambda: hooks.received, lambda got: len(got) >= 1)

    secret = api.get("/v1/webhooks/default/secret").json()["key"]
    sent = Webhook(secret).verify(body, headers)
    assert (sent["id"], sent["status"]) == (prediction["id"], "succeeded")
    assert sent["output"] and sent["completed_at"]
    assert headers["webhook-id"].startswith("msg_")
    assert headers["webhook-signature"].startswith("v1,")
    assert int(headers["webhook-timestamp"]) == int(clock.now)


def test_every_event_by_default_and_each_signed(api, clock, receiver) -> None:
    hooks, url = receiver
    create(api, url)
    clock.advance(0.05)  # running: the simulated prediction lasts 0.1 s
    eventually(lambda: hooks.received, lambda got: len(got) >= 1)
    clock.advance(1)

    received = eventually(
        lambda: hooks.received, lambda got: json.loads(got[-1][1])["status"] == "succeeded"
    )

    secret = api.get("/v1/webhooks/default/secret").json()["key"]
    statuses = [Webhook(secret).verify(body, headers)["status"] for headers, body in received]
    assert statuses[0] == "processing" and statuses[-1] == "succeeded"
    assert len({headers["webhook-id"] for headers, _ in received}) == len(received)


def test_a_tampered_body_does_not_verify(api, clock, receiver) -> None:
    hooks, url = receiver
    create(api, url, webhook_events_filter=["completed"])
    clock.advance(200)
    ((headers, body),) = eventually(lambda: hooks.received, lambda got: len(got) >= 1)

    secret = api.get("/v1/webhooks/default/secret").json()["key"]
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body.replace(b"succeeded", b"failed"), headers)


def test_a_failed_completed_delivery_is_retried(api, clock, receiver) -> None:
    hooks, url = receiver
    hooks.statuses = [500, 503]
    create(api, url, webhook_events_filter=["completed"])
    clock.advance(200)

    received = eventually(lambda: hooks.received, lambda got: len(got) >= 3)

    assert len({headers["webhook-id"] for headers, _ in received}) == 1


def test_an_unknown_event_in_the_filter_is_a_422(api, receiver) -> None:
    _, url = receiver
    body = {"input": {"prompt": "x"}, "webhook": url, "webhook_events_filter": ["done"]}

    response = api.post("/v1/models/acme/painter/predictions", json=body)

    assert response.status_code == 422
    assert response.json()["invalid_fields"][0]["field"] == "webhook_events_filter"
