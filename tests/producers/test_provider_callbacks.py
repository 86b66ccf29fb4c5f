"""Provider callbacks through the real API: a fal and a Replicate job finish from the
simulator's signed callback with at most 2 polls; unverified, replayed, mismatched,
unknown-job and finished-job callbacks change nothing."""

import json
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from producers.api import create_app
from schema.tables import Job, OutboxMessage
from simulator.fal_webhooks import signed_headers as fal_headers
from simulator.fal_webhooks import signing_key
from simulator.replicate_webhooks import signed_headers as replicate_headers
from simulator.replicate_webhooks import signing_secret
from simulator.server import ThreadedServer
from tests.helpers import override
from tests.workers.test_providers import FAL_VIDEO, FAST_ASYNC, PREDICTION
from tests.workers.test_worker import job_of
from workers import execution

SECRET_ENV = "GENQ_TEST_REPLICATE_WEBHOOK_SECRET"
JOBS = {"fal": FAL_VIDEO, "replicate": PREDICTION}


def callbacks_on(routes, sim, monkeypatch, name: str, base_url: str) -> None:
    """Turn callbacks on for route name, verified with the simulator's secret or keys, and
    expect jobs to take a minute so that only a callback can finish them in a test."""
    monkeypatch.setenv(SECRET_ENV, signing_secret(sim.app.state))
    route = routes.by_name[name]
    models = {m: s.model_copy(update={"expected_duration_s": 60}) for m, s in route.models.items()}
    extra = {"jwks_url": f"{sim.url}/_sim/fal/jwks.json", "webhook_secret_env": SECRET_ENV}
    override(routes, name, callback_base_url=base_url, models=models, **extra)


@pytest.fixture
def api(producer) -> Iterator[str]:
    """The API on a free port, where the simulator can call back."""
    with ThreadedServer(create_app(producer)) as server:
        yield server.url


@pytest.mark.parametrize("name", ["fal", "replicate"])
def test_a_callback_finishes_the_job_with_at_most_two_polls(
    name, client, auth, api, routes, sim, worker, runtime, sim_control, monkeypatch
) -> None:
    sim_control.config(**FAST_ASYNC)
    callbacks_on(routes, sim, monkeypatch, name, api)

    job_id = client.post("/v1/jobs", json=JOBS[name], headers=auth).json()["id"]
    job = job_of(client, auth, job_id, {"succeeded", "failed", "dead_lettered"})

    assert job["status"] == "succeeded"
    assert row(runtime, job_id)["polls"] <= 2


def row(runtime, job_id: str) -> dict[str, Any]:
    with runtime.sessions() as session:
        job = session.get_one(Job, job_id)
        return {c.key: getattr(job, c.key) for c in Job.__table__.columns}


def outbox_ids(runtime) -> set[str]:
    with runtime.sessions() as session:
        return set(session.scalars(select(OutboxMessage.message_id)))


Sign = Callable[[str, bytes, int], dict[str, str]]


def signer(name: str, sim) -> Sign:
    """Signs as the simulator signs that provider's callbacks."""
    if name == "fal":
        key = signing_key(sim.app.state)
        return lambda ref, body, at: fal_headers(key, ref, "sim-user", at, body)
    secret = signing_secret(sim.app.state)
    return lambda ref, body, at: replicate_headers(secret, f"msg_{uuid.uuid4().hex}", at, body)


def callback_body(name: str, ref: str) -> bytes:
    if name == "fal":
        return json.dumps({"request_id": ref, "status": "OK", "payload": {}}).encode()
    return json.dumps({"id": ref, "status": "succeeded", "output": ["x"]}).encode()


class Caller:
    """Sends callbacks for one waiting job of a provider to the API."""

    def __init__(self, client, runtime, sim, name: str, job_id: str) -> None:
        self.client, self.name, self.job_id = client, name, job_id
        self.sign = signer(name, sim)
        provider_job_id = row(runtime, job_id)["provider_job_id"]
        self.ref = provider_job_id.rsplit("/", 1)[-1]

    def post(
        self,
        ref: str | None = None,
        at: float | None = None,
        job_id: str | None = None,
        tamper: bool = False,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        body = callback_body(self.name, ref or self.ref)
        signed = self.sign(ref or self.ref, body, int(at or time.time()))
        sent = body.replace(b"OK", b"KO").replace(b"succeeded", b"failed") if tamper else body
        path = f"/v1/provider-callbacks/{self.name}/{job_id or self.job_id}"
        return self.client.post(path, content=sent, headers=signed if headers is None else headers)


@pytest.fixture(params=["fal", "replicate"])
def waiting(request, client, auth, runtime, routes, sim, sim_control, monkeypatch) -> Caller:
    """A job waiting on its provider with no worker running, its route's callbacks on only
    after it was submitted, so the simulator sends none."""
    name = request.param
    sim_control.config(fixed_duration_s=600)
    job_id = client.post("/v1/jobs", json=JOBS[name], headers=auth).json()["id"]
    execution.run_job(runtime, job_id)
    assert row(runtime, job_id)["status"] == "waiting"
    callbacks_on(routes, sim, monkeypatch, name, "http://127.0.0.1:9")
    return Caller(client, runtime, sim, name, job_id)


def unchanged(runtime, caller: Caller, send: Callable[[], httpx.Response]) -> httpx.Response:
    before = (row(runtime, caller.job_id), outbox_ids(runtime))
    response = send()
    assert (row(runtime, caller.job_id), outbox_ids(runtime)) == before
    return response


def test_a_verified_callback_stages_one_poll_now(waiting, runtime) -> None:
    before = outbox_ids(runtime)

    response = waiting.post()

    assert (response.status_code, response.json()) == (200, {"status": "poll"})
    (staged,) = outbox_ids(runtime) - before
    with runtime.sessions() as session:
        message = session.scalars(select(OutboxMessage).filter_by(message_id=staged)).one()
    assert (message.actor_name, message.kwargs) == ("poll_job", {"job_id": waiting.job_id})


@pytest.mark.parametrize("kind", ["tampered", "missing", "stale"])
def test_an_unverified_callback_is_a_401(waiting, runtime, kind, caplog) -> None:
    send = {
        "tampered": lambda: waiting.post(tamper=True),
        "missing": lambda: waiting.post(headers={"content-type": "application/json"}),
        "stale": lambda: waiting.post(at=time.time() - 3600),
    }[kind]

    response = unchanged(runtime, waiting, send)

    assert response.status_code == 401
    assert response.json()["error"]["type"] == "unauthorized"
    assert f"route {waiting.name}, job {waiting.job_id}" in caplog.text


def test_a_replayed_callback_does_nothing_the_second_time(waiting, runtime) -> None:
    body = callback_body(waiting.name, waiting.ref)
    headers = waiting.sign(waiting.ref, body, int(time.time()))
    path = f"/v1/provider-callbacks/{waiting.name}/{waiting.job_id}"
    assert waiting.client.post(path, content=body, headers=headers).json()["status"] == "poll"

    response = unchanged(
        runtime, waiting, lambda: waiting.client.post(path, content=body, headers=headers)
    )

    assert (response.status_code, response.json()) == (200, {"status": "duplicate"})


def test_a_callback_for_another_provider_job_does_nothing(waiting, runtime, caplog) -> None:
    response = unchanged(runtime, waiting, lambda: waiting.post(ref="someone-elses"))

    assert (response.status_code, response.json()) == (200, {"status": "mismatch"})
    assert "mismatch" in caplog.text


def test_a_callback_for_an_unknown_job_is_a_404(waiting, runtime) -> None:
    response = unchanged(runtime, waiting, lambda: waiting.post(job_id="job_unknown"))

    assert response.status_code == 404


def test_a_callback_for_a_finished_job_does_nothing(waiting, runtime, auth) -> None:
    canceled = waiting.client.post(f"/v1/jobs/{waiting.job_id}/cancel", headers=auth)
    assert canceled.json()["status"] == "canceled"

    response = unchanged(runtime, waiting, waiting.post)

    assert (response.status_code, response.json()) == (200, {"status": "finished"})
