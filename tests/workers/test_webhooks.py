"""Signed webhooks end to end: API -> event -> Dramatiq delivery -> the simulator's sample
receiver, which verifies every request with the stock ``standardwebhooks`` library."""

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

import dramatiq
import httpx
import pytest
from sqlalchemy import delete, select, update
from standardwebhooks import Webhook, WebhookVerificationError

from infra.destinations import UnsafeDestinationError
from schema.tables import (
    Job,
    OutboxMessage,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
    WebhookSecret,
    utcnow,
)
from store import webhook_events
from store.tenants import NewTenant
from tests.conftest import WEBHOOK_TEST_SCHEDULE_S, new_tenant
from tests.helpers import override
from tests.producers.test_api import CHAT, counts
from tests.waiting import eventually
from tests.workers.test_providers import FAST_ASYNC, VIDEO
from workers.runtime import Runtime
from workers.sweeps import expire_overdue
from workers.webhooks.dispatch import dispatch_due


def add_endpoint(client, auth, url: str, **fields: Any) -> dict[str, Any]:
    response = client.post("/v1/webhook-endpoints", json={"url": url, **fields}, headers=auth)
    assert response.status_code == 201, response.text
    return response.json()


def finished_delivery(client, auth, delivery_id: str) -> dict[str, Any]:
    return eventually(
        lambda: client.get(f"/v1/webhook-deliveries/{delivery_id}", headers=auth).json(),
        lambda delivery: delivery["status"] != "pending",
    )


def deliveries_of(client, auth, **query: str) -> list[dict[str, Any]]:
    return client.get("/v1/webhook-deliveries", params=query, headers=auth).json()["data"]


def run_job(client, auth, **fields: Any) -> dict[str, Any]:
    """Submit a job (a chat job unless ``fields`` say otherwise) and wait for its end."""
    job = client.post("/v1/jobs", json={**CHAT, **fields}, headers=auth).json()
    return eventually(
        lambda: client.get(f"/v1/jobs/{job['id']}", headers=auth).json(),
        lambda job: job["status"] in ("succeeded", "failed", "dead_lettered"),
    )


def test_a_finished_job_reaches_its_endpoint_signed_per_standard_webhooks(
    client, auth, worker, hooks
) -> None:
    name = hooks.new()
    endpoint = add_endpoint(client, auth, hooks.url(name))
    hooks.configure(name, [endpoint["secret"]])

    job = run_job(client, auth, metadata={"order": "42"})
    state = hooks.wait(name, "verified", 1)

    (request,) = state["requests"]
    assert (state["verified"], state["bad_signature"]) == (1, 0)
    assert endpoint["secret"].startswith("whsec_")
    assert len(Webhook(endpoint["secret"])._whsecret) >= 24
    body = json.loads(request["body"])
    assert set(body) == {"type", "timestamp", "data"}
    assert body["type"] == "job.succeeded" == request["type"]
    assert body["data"]["id"] == job["id"]
    assert body["data"]["status"] == "succeeded"
    assert body["data"]["metadata"] == {"order": "42"}
    assert body["data"]["output"] == job["output"]
    assert request["webhook_id"].startswith("msg_")
    assert request["signature"].startswith("v1,")
    (delivery,) = deliveries_of(client, auth, job_id=job["id"])
    assert delivery["webhook_id"] == request["webhook_id"]
    assert finished_delivery(client, auth, delivery["id"])["status"] == "succeeded"


def test_the_secret_is_shown_only_when_created_or_rotated(client, auth, hooks) -> None:
    endpoint = add_endpoint(client, auth, hooks.url("shown-once"))

    listed = client.get("/v1/webhook-endpoints", headers=auth).json()["data"]
    fetched = client.get(f"/v1/webhook-endpoints/{endpoint['id']}", headers=auth).json()
    rotated = client.post(f"/v1/webhook-endpoints/{endpoint['id']}/rotate-secret", headers=auth)

    assert endpoint["secret"]
    assert [e["secret"] for e in listed] == [None]
    assert fetched["secret"] is None
    assert rotated.json()["secret"].startswith("whsec_")
    assert rotated.json()["secret"] != endpoint["secret"]


def test_during_a_rotation_both_secrets_verify_and_after_it_only_the_new(
    client, auth, worker, hooks
) -> None:
    name = hooks.new()
    endpoint = add_endpoint(client, auth, hooks.url(name))
    old = endpoint["secret"]
    rotated = client.post(
        f"/v1/webhook-endpoints/{endpoint['id']}/rotate-secret",
        json={"grace_s": 3600},
        headers=auth,
    ).json()
    new = rotated["secret"]
    assert rotated["previous_expires_at"] is not None

    client.post(f"/v1/webhook-endpoints/{endpoint['id']}/test", headers=auth)
    during = hooks.wait(name, "received", 1)["requests"][0]
    client.post(
        f"/v1/webhook-endpoints/{endpoint['id']}/rotate-secret", json={"grace_s": 0}, headers=auth
    )
    client.post(f"/v1/webhook-endpoints/{endpoint['id']}/test", headers=auth)
    after = hooks.wait(name, "received", 2)["requests"][1]

    assert len(during["signature"].split(" ")) == 2
    for secret in (old, new):
        assert Webhook(secret).verify(during["body"], _headers(during))["type"] == "webhook.test"
    assert len(after["signature"].split(" ")) == 1
    with pytest.raises(WebhookVerificationError):
        Webhook(new).verify(after["body"], _headers(after))
    with pytest.raises(WebhookVerificationError):
        Webhook(old).verify(after["body"], _headers(after))


def _headers(request: dict[str, Any]) -> dict[str, str]:
    return {
        "webhook-id": request["webhook_id"],
        "webhook-timestamp": request["timestamp"],
        "webhook-signature": request["signature"],
    }


def test_a_jobs_own_webhook_url_is_signed_with_the_tenants_default_secret(
    client, auth, tenant: NewTenant, worker, hooks
) -> None:
    name = hooks.new([tenant.webhook_secret])

    job = run_job(client, auth, webhook_url=hooks.url(name))
    state = hooks.wait(name, "verified", 1)

    assert json.loads(state["requests"][0]["body"])["data"]["id"] == job["id"]
    assert job["webhook_url"] == hooks.url(name)


def test_a_receiver_down_for_a_while_gets_every_event_with_the_same_ids(
    client, auth, worker, hooks, runtime: Runtime
) -> None:
    name = hooks.new(responses=[{"status": 503}] * 6)
    endpoint = add_endpoint(client, auth, hooks.url(name))
    hooks.configure(name, [endpoint["secret"]], responses=[{"status": 503}] * 6)
    runtime.webhook_gate.pause = lambda origin, seconds: None  # keep the test to the schedule

    sent = [
        client.post(f"/v1/webhook-endpoints/{endpoint['id']}/test", headers=auth).json()
        for _ in range(3)
    ]
    done = [finished_delivery(client, auth, delivery["id"]) for delivery in sent]
    state = hooks.state(name)

    assert [d["status"] for d in done] == ["succeeded"] * 3
    assert sorted(state["ids"]) == sorted(d["webhook_id"] for d in sent)
    by_id: dict[str, list[dict[str, Any]]] = {}
    for request in state["requests"]:
        by_id.setdefault(request["webhook_id"], []).append(request)
    assert all(len({r["body"] for r in requests}) == 1 for requests in by_id.values())
    assert state["received"] == 9 and state["verified"] == 9
    assert sum(len(r) - 1 for r in by_id.values()) == state["duplicates"] == 6
    log = [a for d in done for a in d["attempt_log"]]
    assert sorted(a["status_code"] for a in log) == [200] * 3 + [503] * 6
    assert all(a["duration_ms"] >= 0 and a["started_at"] for a in log)


def test_retries_stop_when_the_schedule_runs_out(client, auth, worker, hooks) -> None:
    name = hooks.new(default={"status": 500})
    endpoint = add_endpoint(client, auth, hooks.url(name))

    sent = client.post(f"/v1/webhook-endpoints/{endpoint['id']}/test", headers=auth).json()
    done = finished_delivery(client, auth, sent["id"])

    assert done["status"] == "failed"
    assert done["attempts"] == len(WEBHOOK_TEST_SCHEDULE_S)
    assert done["last_error"] == "the receiver answered 500"
    assert hooks.state(name)["received"] == len(WEBHOOK_TEST_SCHEDULE_S)
    assert client.get(f"/v1/webhook-endpoints/{endpoint['id']}", headers=auth).json()[
        "failing_since"
    ]


def test_a_connection_refused_is_logged_and_retried(client, auth, worker, hooks) -> None:
    endpoint = add_endpoint(client, auth, "http://127.0.0.1:9/nobody-listens")

    sent = client.post(f"/v1/webhook-endpoints/{endpoint['id']}/test", headers=auth).json()
    done = finished_delivery(client, auth, sent["id"])

    assert done["status"] == "failed"
    assert len(done["attempt_log"]) == len(WEBHOOK_TEST_SCHEDULE_S)
    assert all(a["status_code"] is None for a in done["attempt_log"])
    assert "ConnectError" in done["attempt_log"][0]["error"]


def test_410_disables_the_endpoint_and_tells_the_tenants_other_endpoints(
    client, auth, worker, hooks
) -> None:
    gone = hooks.new(default={"status": 410})
    watcher = hooks.new()
    endpoint = add_endpoint(client, auth, hooks.url(gone))
    other = add_endpoint(client, auth, hooks.url(watcher), event_types=["endpoint.disabled"])
    hooks.configure(watcher, [other["secret"]])

    sent = client.post(f"/v1/webhook-endpoints/{endpoint['id']}/test", headers=auth).json()
    done = finished_delivery(client, auth, sent["id"])
    told = hooks.wait(watcher, "verified", 1)["requests"][0]
    shown = client.get(f"/v1/webhook-endpoints/{endpoint['id']}", headers=auth).json()

    assert (done["status"], done["attempts"]) == ("failed", 1)
    assert done["attempt_log"][0]["outcome"] == "gone"
    assert hooks.state(gone)["received"] == 1
    assert (shown["enabled"], shown["disabled_reason"]) == (False, "the receiver answered 410 Gone")
    event = json.loads(told["body"])
    assert event["type"] == "endpoint.disabled"
    assert event["data"]["id"] == endpoint["id"]


def test_an_endpoint_failing_for_days_is_disabled(
    client, auth, worker, hooks, runtime: Runtime
) -> None:
    name = hooks.new(default={"status": 500})
    endpoint = add_endpoint(client, auth, hooks.url(name))
    with runtime.sessions.begin() as session:
        session.execute(
            update(WebhookEndpoint)
            .where(WebhookEndpoint.id == endpoint["id"])
            .values(failing_since=utcnow() - timedelta(days=5, minutes=1))
        )

    sent = client.post(f"/v1/webhook-endpoints/{endpoint['id']}/test", headers=auth).json()
    done = finished_delivery(client, auth, sent["id"])
    shown = client.get(f"/v1/webhook-endpoints/{endpoint['id']}", headers=auth).json()

    assert (shown["enabled"], shown["disabled_reason"]) == (False, "failing for 5 days")
    assert done["status"] == "failed"


def test_a_disabled_endpoint_gets_nothing_until_enabled_and_recovered(
    client, auth, worker, hooks
) -> None:
    name = hooks.new()
    endpoint = add_endpoint(client, auth, hooks.url(name))
    since = utcnow().isoformat()
    client.patch(f"/v1/webhook-endpoints/{endpoint['id']}", json={"enabled": False}, headers=auth)
    with_job = run_job(client, auth)
    (missed,) = deliveries_of(client, auth, job_id=with_job["id"])
    sent = client.post(f"/v1/webhook-endpoints/{endpoint['id']}/test", headers=auth).json()
    skipped = finished_delivery(client, auth, sent["id"])
    assert skipped["last_error"] == "endpoint disabled: disabled by the tenant"
    assert (missed["status"], missed["attempts"]) == ("failed", 0)
    assert hooks.state(name)["received"] == 0

    enabled = client.patch(
        f"/v1/webhook-endpoints/{endpoint['id']}", json={"enabled": True}, headers=auth
    ).json()
    recovered = client.post(
        f"/v1/webhook-endpoints/{endpoint['id']}/recover", json={"since": since}, headers=auth
    )

    assert (enabled["enabled"], enabled["disabled_reason"]) == (True, None)
    assert recovered.status_code == 202
    assert recovered.json()["delivery_ids"] == [missed["id"], sent["id"]]
    assert finished_delivery(client, auth, sent["id"])["status"] == "succeeded"
    assert finished_delivery(client, auth, missed["id"])["status"] == "succeeded"
    received = hooks.wait(name, "received", 2)
    assert sorted(received["ids"]) == sorted([missed["webhook_id"], sent["webhook_id"]])


def test_recover_resends_only_failures_in_the_window(
    client, auth, worker, hooks, runtime: Runtime
) -> None:
    name = hooks.new(default={"status": 500})
    endpoint = add_endpoint(client, auth, hooks.url(name))
    first, second = (
        client.post(f"/v1/webhook-endpoints/{endpoint['id']}/test", headers=auth).json()
        for _ in range(2)
    )
    for delivery in (first, second):
        assert finished_delivery(client, auth, delivery["id"])["status"] == "failed"
    with runtime.sessions.begin() as session:
        session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.id == first["id"])
            .values(created_at=utcnow() - timedelta(days=2))
        )
    hooks.configure(name, [])
    window = {"since": (utcnow() - timedelta(days=1)).isoformat()}

    recovered = client.post(
        f"/v1/webhook-endpoints/{endpoint['id']}/recover", json=window, headers=auth
    ).json()

    assert recovered == {"object": "webhook_recovery", "resent": 1, "delivery_ids": [second["id"]]}
    assert finished_delivery(client, auth, second["id"])["status"] == "succeeded"
    assert client.get(f"/v1/webhook-deliveries/{first['id']}", headers=auth).json()["status"] == (
        "failed"
    )


def test_resend_sends_the_same_event_again(client, auth, worker, hooks) -> None:
    name = hooks.new()
    endpoint = add_endpoint(client, auth, hooks.url(name))
    hooks.configure(name, [endpoint["secret"]])
    sent = client.post(f"/v1/webhook-endpoints/{endpoint['id']}/test", headers=auth).json()
    assert finished_delivery(client, auth, sent["id"])["status"] == "succeeded"

    resent = client.post(f"/v1/webhook-deliveries/{sent['id']}/resend", headers=auth)
    state = hooks.wait(name, "verified", 2)
    done = eventually(
        lambda: client.get(f"/v1/webhook-deliveries/{sent['id']}", headers=auth).json(),
        lambda d: d["status"] == "succeeded" and d["attempts"] == 2,
    )

    assert resent.status_code == 202
    assert state["ids"] == [sent["webhook_id"]]
    assert state["duplicates"] == 1
    assert state["requests"][0]["body"] == state["requests"][1]["body"]
    assert [a["number"] for a in done["attempt_log"]] == [1, 2]


def test_a_slow_endpoint_does_not_hold_up_others(client, auth, worker, hooks, runtime) -> None:
    client.app.state.producer.webhooks.resolve = runtime.resolve = _names_for_the_sim
    slow = hooks.new(responses=[{"hold": True}])
    fast = hooks.new()
    slow_endpoint = add_endpoint(client, auth, _on_host(hooks.url(slow), "slow.test"))
    fast_endpoint = add_endpoint(client, auth, _on_host(hooks.url(fast), "fast.test"))
    try:
        for _ in range(4):
            client.post(f"/v1/webhook-endpoints/{slow_endpoint['id']}/test", headers=auth)
        eventually(lambda: hooks.state(slow), lambda state: state["held"] == 1)
        sent = client.post(f"/v1/webhook-endpoints/{fast_endpoint['id']}/test", headers=auth)

        assert finished_delivery(client, auth, sent.json()["id"])["status"] == "succeeded"
        assert hooks.state(slow)["received"] == 1
    finally:
        hooks.release(slow)
    eventually(
        lambda: deliveries_of(client, auth, endpoint_id=slow_endpoint["id"]),
        lambda found: [d["status"] for d in found] == ["succeeded"] * 4,
    )
    assert hooks.state(slow)["received"] == 4


def _names_for_the_sim(host: str, port: int) -> list[str]:
    """Two receivers (origins) on the one simulator, as if DNS named it twice."""
    return {"slow.test": ["127.0.0.1"], "fast.test": ["127.0.0.1"]}[host]


def _on_host(url: str, host: str) -> str:
    return str(httpx.URL(url).copy_with(host=host))


def test_429_with_retry_after_pauses_the_receiver(client, auth, worker, hooks, runtime) -> None:
    name = hooks.new(responses=[{"status": 429, "retry_after": 1}])
    endpoint = add_endpoint(client, auth, hooks.url(name))

    sent = client.post(f"/v1/webhook-endpoints/{endpoint['id']}/test", headers=auth).json()
    done = finished_delivery(client, auth, sent["id"])

    first, second = done["attempt_log"]
    assert (first["status_code"], second["status_code"]) == (429, 200)
    waited = datetime.fromisoformat(second["started_at"]) - datetime.fromisoformat(
        first["started_at"]
    )
    assert waited >= timedelta(seconds=1)


def test_a_redirect_is_not_followed(client, auth, worker, hooks) -> None:
    name = hooks.new(default={"status": 302, "location": "http://169.254.169.254/latest/"})
    endpoint = add_endpoint(client, auth, hooks.url(name))

    sent = client.post(f"/v1/webhook-endpoints/{endpoint['id']}/test", headers=auth).json()
    done = finished_delivery(client, auth, sent["id"])

    assert done["status"] == "failed"
    assert {a["status_code"] for a in done["attempt_log"]} == {302}
    assert "redirect to 'http://169.254.169.254/latest/' not followed" in done["last_error"]


def test_a_name_that_resolves_privately_at_send_time_is_refused(
    client, auth, worker, hooks, runtime: Runtime
) -> None:
    producer = client.app.state.producer
    producer.settings.webhook_allow_networks = []
    producer.webhooks.resolve = lambda host, port: ["93.184.216.34"]
    runtime.resolve = lambda host, port: ["169.254.169.254"]
    endpoint = add_endpoint(client, auth, "https://hooks.example.com/genq")

    sent = client.post(f"/v1/webhook-endpoints/{endpoint['id']}/test", headers=auth).json()
    done = finished_delivery(client, auth, sent["id"])

    (attempt,) = done["attempt_log"]
    assert (done["status"], attempt["outcome"], attempt["status_code"]) == (
        "failed",
        "refused",
        None,
    )
    assert "metadata" in attempt["error"]


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("http://127.0.0.1/hook", "loopback"),
        ("http://10.1.2.3/hook", "private"),
        ("http://169.254.169.254/latest/meta-data", "metadata"),
        ("http://[fd00:ec2::254]/", "metadata"),
        ("http://100.64.0.1/", "100.64.0.1"),
        ("http://localhost:8080/hook", "loopback"),
        ("http://" + "a" * 64 + ".example.com/hook", "not a valid hostname"),
        ("ftp://example.com/hook", "URL scheme should be 'http' or 'https'"),
    ],
)
def test_an_unsafe_endpoint_url_is_a_422_that_says_why(
    client, auth, engine, producer, url, says
) -> None:
    producer.settings.webhook_allow_networks = []

    response = client.post("/v1/webhook-endpoints", json={"url": url}, headers=auth)

    assert response.status_code == 422
    error = response.json()["error"]
    assert error["errors"][0]["field"] == "url"
    assert says in error["message"]
    assert client.get("/v1/webhook-endpoints", headers=auth).json()["data"] == []


def test_an_unsafe_job_webhook_url_is_a_422_and_stores_nothing(
    client, auth, engine, producer
) -> None:
    producer.settings.webhook_allow_networks = []

    response = client.post(
        "/v1/jobs", json={**CHAT, "webhook_url": "http://192.168.1.10/hook"}, headers=auth
    )

    assert response.status_code == 422
    assert response.json()["error"]["errors"][0]["field"] == "webhook_url"
    assert "private" in response.json()["error"]["message"]
    assert counts(engine) == (0, 0)


def test_endpoint_api_validates_and_isolates_tenants(client, auth, engine, hooks) -> None:
    endpoint = add_endpoint(
        client, auth, hooks.url("mine"), description="orders", event_types=["job.failed"]
    )
    other = new_tenant(engine, "other")
    theirs = {"Authorization": f"Bearer {other.api_key}"}
    path = f"/v1/webhook-endpoints/{endpoint['id']}"

    assert endpoint["event_types"] == ["job.failed"]
    assert client.get(path, headers=theirs).status_code == 404
    assert client.patch(path, json={"enabled": False}, headers=theirs).status_code == 404
    assert client.delete(path, headers=theirs).status_code == 404
    assert client.post(f"{path}/test", headers=theirs).status_code == 404
    assert client.get("/v1/webhook-endpoints", headers=theirs).json()["data"] == []
    bad = [
        client.post("/v1/webhook-endpoints", json={"url": "not a url"}, headers=auth),
        client.post(
            "/v1/webhook-endpoints",
            json={"url": hooks.url("x"), "event_types": ["job.exploded"]},
            headers=auth,
        ),
        client.patch(path, json={}, headers=auth),
        client.post(f"{path}/recover", json={"since": "2026-01-01T00:00:00"}, headers=auth),
        client.post(
            f"{path}/recover",
            json={"since": "2026-01-02T00:00:00Z", "until": "2026-01-01T00:00:00Z"},
            headers=auth,
        ),
        client.post(f"{path}/rotate-secret", json={"grace_s": -1}, headers=auth),
        client.get("/v1/webhook-deliveries", params={"cursor": "garbage"}, headers=auth),
    ]
    assert [r.status_code for r in bad] == [422] * len(bad)
    assert client.get(path, headers=auth).json()["description"] == "orders"
    updated = client.patch(
        path, json={"description": "all", "event_types": None}, headers=auth
    ).json()
    assert (updated["description"], updated["event_types"]) == ("all", None)
    assert client.delete(path, headers=auth).status_code == 204
    assert client.get(path, headers=auth).status_code == 404


def test_event_type_filters_choose_the_endpoints(client, auth, worker, hooks, sim_control) -> None:
    failures = hooks.new()
    everything = hooks.new()
    add_endpoint(client, auth, hooks.url(failures), event_types=["job.failed"])
    add_endpoint(client, auth, hooks.url(everything))
    sim_control.faults({"endpoint": "chat.completions", "kind": "status", "code": 400, "count": 1})

    failed = run_job(client, auth)
    succeeded = run_job(client, auth)
    hooks.wait(everything, "received", 2)
    hooks.wait(failures, "received", 1)

    assert failed["status"] == "failed" and succeeded["status"] == "succeeded"
    assert [r["type"] for r in hooks.state(failures)["requests"]] == ["job.failed"]
    assert sorted(r["type"] for r in hooks.state(everything)["requests"]) == [
        "job.failed",
        "job.succeeded",
    ]


def test_a_canceled_job_sends_job_canceled(
    client, auth, hooks, tenant: NewTenant, runtime: Runtime
) -> None:
    name = hooks.new([tenant.webhook_secret])
    job = client.post("/v1/jobs", json={**CHAT, "webhook_url": hooks.url(name)}, headers=auth)

    canceled = client.post(f"/v1/jobs/{job.json()['id']}/cancel", headers=auth)
    with running_worker(runtime):
        request = hooks.wait(name, "verified", 1)["requests"][0]

    assert canceled.json()["status"] == "canceled"
    event = json.loads(request["body"])
    assert (event["type"], event["data"]["status"]) == ("job.canceled", "canceled")


@contextmanager
def running_worker(runtime: Runtime) -> Iterator[None]:
    worker = dramatiq.Worker(runtime.broker, worker_timeout=50, worker_threads=4)
    worker.start()
    try:
        yield
    finally:
        worker.stop()


def test_a_job_past_its_deadline_sends_job_failed(client, auth, hooks, runtime) -> None:
    name = hooks.new()
    add_endpoint(client, auth, hooks.url(name))
    job = client.post("/v1/jobs", json=CHAT, headers=auth).json()
    with runtime.sessions.begin() as session:
        session.execute(
            update(Job).where(Job.id == job["id"]).values(deadline_at=utcnow() - timedelta(1))
        )

    assert expire_overdue(runtime.sessions, runtime.broker, runtime.settings) == 1
    (delivery,) = deliveries_of(client, auth, job_id=job["id"])

    assert delivery["event_type"] == "job.failed"
    with running_worker(runtime):
        body = json.loads(hooks.wait(name, "received", 1)["requests"][0]["body"])
    assert body["data"]["error"]["type"] == "deadline_exceeded"


def test_a_dead_lettered_job_sends_job_failed(
    client, auth, routes, worker, hooks, sim_control
) -> None:
    name = hooks.new()
    add_endpoint(client, auth, hooks.url(name))
    override(routes, "openai", max_attempts=1)
    sim_control.faults({"endpoint": "chat.completions", "kind": "status", "code": 503})

    job = run_job(client, auth)
    body = json.loads(hooks.wait(name, "received", 1)["requests"][0]["body"])

    assert job["status"] == "dead_lettered"
    assert (body["type"], body["data"]["status"]) == ("job.failed", "dead_lettered")


def test_job_started_goes_only_to_those_who_ask(client, auth, worker, hooks, sim_control) -> None:
    sim_control.config(**FAST_ASYNC)
    progress = hooks.new()
    results = hooks.new()
    add_endpoint(client, auth, hooks.url(progress), event_types=["job.started", "job.succeeded"])
    add_endpoint(client, auth, hooks.url(results))

    job = run_job(client, auth, **VIDEO)
    hooks.wait(progress, "received", 2)
    hooks.wait(results, "received", 1)

    assert job["status"] == "succeeded"
    assert [r["type"] for r in hooks.state(progress)["requests"]] == [
        "job.started",
        "job.succeeded",
    ]
    assert [r["type"] for r in hooks.state(results)["requests"]] == ["job.succeeded"]


def test_a_large_output_goes_as_a_link_and_the_body_stays_small(
    client, auth, producer, hooks
) -> None:
    job = client.post("/v1/jobs", json={**CHAT, "webhook_url": hooks.url("big")}, headers=auth)
    job_id = job.json()["id"]
    with producer.sessions.begin() as session:
        session.execute(
            update(Job)
            .where(Job.id == job_id)
            .values(status="succeeded", output={"text": "token " * 10_000})
        )
        row = session.get_one(Job, job_id)
        (outbox_row,) = webhook_events.job_event(session, producer.settings, row)
        delivery = session.get_one(WebhookDelivery, outbox_row.kwargs["delivery_ids"][0])
        body = session.get_one(WebhookEvent, delivery.event_id).body

    data = json.loads(body)["data"]
    assert len(body.encode()) < 16_384
    assert data["output"] is None
    assert data["output_url"] == f"http://127.0.0.1:8000/v1/jobs/{job_id}"
    assert data["id"] == job_id


def test_a_far_retry_is_left_to_the_dispatch_sweep(
    client, auth, hooks, runtime: Runtime, worker
) -> None:
    name = hooks.new()
    endpoint = add_endpoint(client, auth, hooks.url(name))
    with runtime.sessions.begin() as session:
        delivery_id = _pending_without_message(session, endpoint)

    assert dispatch_due(runtime.sessions, runtime.broker) == 1
    assert dispatch_due(runtime.sessions, runtime.broker) == 0
    assert finished_delivery(client, auth, delivery_id)["status"] == "succeeded"


def _pending_without_message(session, endpoint: dict[str, Any]) -> str:
    endpoint_row = session.get(WebhookEndpoint, endpoint["id"])
    delivery, rows = webhook_events.ping_event(session, endpoint_row)
    delivery_id = delivery.id
    session.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.id == delivery_id)
        .values(next_attempt_at=utcnow() - timedelta(seconds=1), dispatched_at=None)
    )
    session.flush()
    session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id.in_([row.id for row in rows]))
        .values(sent_at=utcnow())
    )
    assert session.scalar(select(WebhookDelivery.status).where(WebhookDelivery.id == delivery_id))
    return delivery_id


@pytest.mark.parametrize("first_answer", [500, 200])
def test_a_resend_during_an_attempt_starts_a_new_round(
    client, auth, worker, hooks, runtime: Runtime, first_answer: int
) -> None:
    runtime.settings.webhook_retry_schedule_s = [0]
    name = hooks.new(responses=[{"status": first_answer, "hold": True}])
    endpoint = add_endpoint(client, auth, hooks.url(name))
    sent = client.post(f"/v1/webhook-endpoints/{endpoint['id']}/test", headers=auth).json()
    eventually(lambda: hooks.state(name), lambda state: state["held"] == 1)

    resent = client.post(f"/v1/webhook-deliveries/{sent['id']}/resend", headers=auth)
    hooks.release(name)
    done = eventually(
        lambda: client.get(f"/v1/webhook-deliveries/{sent['id']}", headers=auth).json(),
        lambda delivery: delivery["status"] != "pending",
    )

    assert resent.status_code == 202
    assert done["status"] == "succeeded"
    assert [a["status_code"] for a in done["attempt_log"]] == [first_answer, 200]


def test_a_name_that_does_not_resolve_for_now_is_retried(
    client, auth, worker, hooks, runtime: Runtime
) -> None:
    client.app.state.producer.webhooks.resolve = lambda host, port: ["127.0.0.1"]
    name = hooks.new()
    endpoint = add_endpoint(client, auth, _on_host(hooks.url(name), "flaky.test"))
    failures = iter(range(2))

    def flaky_dns(host: str, port: int) -> list[str]:
        if next(failures, None) is not None:
            raise UnsafeDestinationError("unresolvable", f"webhook URL host {host} did not resolve")
        return ["127.0.0.1"]

    runtime.resolve = flaky_dns
    sent = client.post(f"/v1/webhook-endpoints/{endpoint['id']}/test", headers=auth).json()
    done = finished_delivery(client, auth, sent["id"])

    assert done["status"] == "succeeded"
    assert [a["outcome"] for a in done["attempt_log"]] == ["failed", "failed", "succeeded"]
    assert "did not resolve" in done["attempt_log"][0]["error"]


def test_recover_after_fixing_the_url_sends_to_the_new_one(client, auth, worker, hooks) -> None:
    wrong = hooks.new(default={"status": 404})
    right = hooks.new()
    endpoint = add_endpoint(client, auth, hooks.url(wrong))
    since = utcnow().isoformat()
    sent = client.post(f"/v1/webhook-endpoints/{endpoint['id']}/test", headers=auth).json()
    assert finished_delivery(client, auth, sent["id"])["status"] == "failed"

    client.patch(
        f"/v1/webhook-endpoints/{endpoint['id']}", json={"url": hooks.url(right)}, headers=auth
    )
    client.post(
        f"/v1/webhook-endpoints/{endpoint['id']}/recover", json={"since": since}, headers=auth
    )

    assert finished_delivery(client, auth, sent["id"])["url"] == hooks.url(right)
    assert hooks.wait(right, "received", 1)["ids"] == [sent["webhook_id"]]


def test_a_job_url_needs_the_tenants_default_secret(client, auth, tenant, engine, hooks) -> None:
    with engine.begin() as connection:
        connection.execute(delete(WebhookSecret).where(WebhookSecret.tenant_id == tenant.tenant_id))

    refused = client.post("/v1/jobs", json={**CHAT, "webhook_url": hooks.url("x")}, headers=auth)
    rotated = client.post("/v1/webhook-secret/rotate", headers=auth)
    accepted = client.post("/v1/jobs", json={**CHAT, "webhook_url": hooks.url("x")}, headers=auth)

    assert refused.status_code == 422
    assert "no default webhook secret" in refused.json()["error"]["message"]
    assert rotated.json()["secret"].startswith("whsec_")
    assert rotated.json()["previous_expires_at"] is None
    assert accepted.status_code == 202


def test_a_delivery_without_a_live_secret_fails_without_sending(
    client, auth, worker, hooks, runtime: Runtime
) -> None:
    name = hooks.new()
    endpoint = add_endpoint(client, auth, hooks.url(name))
    with runtime.sessions.begin() as session:
        session.execute(delete(WebhookSecret).where(WebhookSecret.endpoint_id == endpoint["id"]))

    sent = client.post(f"/v1/webhook-endpoints/{endpoint['id']}/test", headers=auth).json()
    done = finished_delivery(client, auth, sent["id"])

    assert done["status"] == "failed"
    assert done["attempt_log"][0]["error"] == "no signing secret; rotate one to create it"
    assert hooks.state(name)["received"] == 0
