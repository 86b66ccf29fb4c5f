"""The HTTP API: submission, idempotency, batches, reads, cancel, and every bad input."""

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select

from schema.tables import Job, OutboxMessage
from tests.conftest import new_tenant

CHAT = {
    "model": "openai/gpt-4o-mini",
    "input": {"messages": [{"role": "user", "content": "Hello"}], "max_tokens": 16},
}


def counts(engine: Engine) -> tuple[int, int]:
    with engine.connect() as connection:
        jobs = connection.scalar(select(func.count()).select_from(Job))
        messages = connection.scalar(select(func.count()).select_from(OutboxMessage))
    return jobs, messages


def test_submit_returns_202_and_the_queued_job(client: TestClient, auth, engine) -> None:
    response = client.post("/v1/jobs", json={**CHAT, "metadata": {"user": "u1"}}, headers=auth)

    assert response.status_code == 202
    job = response.json()
    assert job["id"].startswith("job_")
    assert job["status"] == "queued"
    assert (job["kind"], job["route"], job["metadata"]) == ("chat", "openai", {"user": "u1"})
    assert client.get(f"/v1/jobs/{job['id']}", headers=auth).json()["id"] == job["id"]
    assert counts(engine) == (1, 1)


def test_webhook_fields_are_stored(client: TestClient, auth, producer) -> None:
    producer.webhooks.resolve = lambda host, port: ["93.184.216.34"]
    body = {
        **CHAT,
        "webhook_url": "https://hooks.example.com/genq",
        "webhook_events": ["job.failed"],
    }
    job = client.post("/v1/jobs", json=body, headers=auth).json()

    assert job["webhook_url"] == "https://hooks.example.com/genq"
    assert job["webhook_events"] == ["job.failed"]


def test_same_idempotency_key_and_body_returns_the_first_job(client, auth, engine) -> None:
    headers = {**auth, "Idempotency-Key": "order-1"}
    first = client.post("/v1/jobs", json=CHAT, headers=headers)
    again = client.post("/v1/jobs", json=CHAT, headers=headers)

    assert again.status_code == 202
    assert again.json()["id"] == first.json()["id"]
    assert again.headers["Idempotent-Replayed"] == "true"
    assert counts(engine) == (1, 1)


def test_same_idempotency_key_with_another_body_is_409(client, auth, engine) -> None:
    headers = {**auth, "Idempotency-Key": "order-1"}
    client.post("/v1/jobs", json=CHAT, headers=headers)
    other = {**CHAT, "metadata": {"changed": True}}
    response = client.post("/v1/jobs", json=other, headers=headers)

    assert response.status_code == 409
    assert response.json()["error"]["type"] == "idempotency_conflict"
    assert counts(engine) == (1, 1)


def test_idempotency_keys_are_per_tenant(client, auth, engine) -> None:
    other = new_tenant(engine, "globex")
    key = {"Idempotency-Key": "shared"}
    mine = client.post("/v1/jobs", json=CHAT, headers={**auth, **key}).json()
    theirs = client.post(
        "/v1/jobs", json=CHAT, headers={"Authorization": f"Bearer {other.api_key}", **key}
    ).json()

    assert mine["id"] != theirs["id"]


def test_batch_stores_all_jobs_in_one_call(client, auth, engine) -> None:
    items = [{**CHAT, "idempotency_key": f"b-{i}"} for i in range(3)]
    response = client.post("/v1/jobs/batch", json={"jobs": items}, headers=auth)

    assert response.status_code == 202
    assert [job["status"] for job in response.json()["data"]] == ["queued"] * 3
    assert counts(engine) == (3, 3)
    replay = client.post("/v1/jobs/batch", json={"jobs": items}, headers=auth).json()
    assert [j["id"] for j in replay["data"]] == [j["id"] for j in response.json()["data"]]
    assert counts(engine) == (3, 3)


def test_batch_with_one_bad_job_stores_none(client, auth, engine) -> None:
    items = [CHAT, {**CHAT, "model": "openai/nope"}, CHAT]
    response = client.post("/v1/jobs/batch", json={"jobs": items}, headers=auth)

    assert response.status_code == 422
    assert response.json()["error"]["errors"][0]["field"] == "jobs.1.model"
    assert counts(engine) == (0, 0)


def test_batch_reusing_a_key_with_another_body_stores_none(client, auth, engine) -> None:
    client.post("/v1/jobs", json=CHAT, headers={**auth, "Idempotency-Key": "k"})
    items = [{**CHAT, "metadata": {"n": 1}}, {**CHAT, "idempotency_key": "k", "metadata": {"x": 1}}]
    response = client.post("/v1/jobs/batch", json={"jobs": items}, headers=auth)

    assert response.status_code == 409
    assert counts(engine) == (1, 1)


def test_batch_over_the_limit_is_422(client, auth, engine, producer) -> None:
    items = [CHAT] * (producer.settings.batch_max_jobs + 1)
    response = client.post("/v1/jobs/batch", json={"jobs": items}, headers=auth)

    assert response.status_code == 422
    assert response.json()["error"]["errors"][0]["field"] == "jobs"
    assert counts(engine) == (0, 0)


def test_list_pages_through_own_jobs_newest_first(client, auth, engine) -> None:
    ids = [client.post("/v1/jobs", json=CHAT, headers=auth).json()["id"] for _ in range(5)]
    other = new_tenant(engine, "globex")
    client.post("/v1/jobs", json=CHAT, headers={"Authorization": f"Bearer {other.api_key}"})

    seen, cursor = [], None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = client.get("/v1/jobs", params=params, headers=auth).json()
        seen += [job["id"] for job in page["data"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(ids)
    assert len(seen) == 5


def test_list_filters_by_status(client, auth) -> None:
    kept = client.post("/v1/jobs", json=CHAT, headers=auth).json()["id"]
    canceled = client.post("/v1/jobs", json=CHAT, headers=auth).json()["id"]
    client.post(f"/v1/jobs/{canceled}/cancel", headers=auth)

    queued = client.get("/v1/jobs", params={"status": "queued"}, headers=auth).json()["data"]
    assert [job["id"] for job in queued] == [kept]


def test_cancel_a_queued_job_then_again_is_409(client, auth) -> None:
    job_id = client.post("/v1/jobs", json=CHAT, headers=auth).json()["id"]

    canceled = client.post(f"/v1/jobs/{job_id}/cancel", headers=auth)
    assert canceled.status_code == 200
    assert canceled.json()["status"] == "canceled"
    again = client.post(f"/v1/jobs/{job_id}/cancel", headers=auth)
    assert again.status_code == 409
    assert "already canceled" in again.json()["error"]["message"]


def test_health_and_readiness(client) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"database": "ok", "broker": "ok", "redis": "ok"}


def test_openapi_is_served(client) -> None:
    assert client.get("/docs").status_code == 200
    assert "/v1/jobs" in client.get("/openapi.json").json()["paths"]


# --- bad input: a clear 4xx, no row written, no message sent -----------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer gq_not-a-real-key"},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"Authorization": "Bearer"},
    ],
    ids=["missing", "unknown", "wrong-scheme", "empty"],
)
def test_missing_or_invalid_key_is_401(client, engine, headers) -> None:
    response = client.post("/v1/jobs", json=CHAT, headers=headers)

    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert response.json()["error"]["type"] == "unauthorized"
    assert client.get("/v1/jobs", headers=headers).status_code == 401
    assert counts(engine) == (0, 0)


@pytest.mark.parametrize(
    ("body", "field", "says"),
    [
        ({**CHAT, "model": "nope/gpt-4o-mini"}, "model", "unknown route 'nope'"),
        ({**CHAT, "model": "openai/gpt-9"}, "model", "does not serve model 'gpt-9'"),
        ({**CHAT, "model": "gpt-4o-mini"}, "model", "<route>/<model>"),
        ({**CHAT, "input": {"messages": []}}, "input.messages", "at least 1"),
        (
            {**CHAT, "input": {"messages": [{"role": "robot", "content": "hi"}]}},
            "input.messages.0.role",
            "",
        ),
        ({**CHAT, "input": {**CHAT["input"], "max_tokens": 0}}, "input.max_tokens", ""),
        ({**CHAT, "input": {**CHAT["input"], "stream": True}}, "input.stream", "streaming"),
        ({"input": CHAT["input"]}, "model", "Field required"),
        ({**CHAT, "input": "hello"}, "input", ""),
        ({**CHAT, "metadata": {"a": [1]}}, "metadata.a", ""),
        ({**CHAT, "webhook_url": "ftp://x"}, "webhook_url", ""),
        ({**CHAT, "surprise": 1}, "surprise", "Extra inputs"),
    ],
    ids=[
        "unknown-route",
        "unknown-model",
        "no-route",
        "empty-messages",
        "bad-role",
        "zero-max-tokens",
        "stream",
        "missing-model",
        "input-not-object",
        "metadata-nested",
        "webhook-scheme",
        "extra-field",
    ],
)
def test_bad_job_is_422_naming_the_field(client, auth, engine, body, field, says) -> None:
    response = client.post("/v1/jobs", json=body, headers=auth)

    assert response.status_code == 422
    error = response.json()["error"]
    assert error["type"] == "invalid_request"
    assert any(e["field"].startswith(field) and says in e["message"] for e in error["errors"])
    assert counts(engine) == (0, 0)


def test_malformed_json_is_422(client, auth, engine) -> None:
    response = client.post(
        "/v1/jobs",
        content=b'{"model": "openai/gpt-4o-mini", ',
        headers={**auth, "Content-Type": "application/json"},
    )

    assert response.status_code == 422
    assert "not valid JSON" in response.json()["error"]["message"]
    assert counts(engine) == (0, 0)


def test_body_over_the_limit_is_413(client, auth, engine, producer) -> None:
    big = "x" * (producer.settings.max_body_bytes + 1)
    body = {**CHAT, "input": {"messages": [{"role": "user", "content": big}]}}
    response = client.post("/v1/jobs", json=body, headers=auth)

    assert response.status_code == 413
    assert response.json()["error"]["type"] == "request_too_large"
    assert counts(engine) == (0, 0)


def test_chunked_body_over_the_limit_is_413(client, auth, engine, producer) -> None:
    chunk = b"x" * 65536
    chunks = (producer.settings.max_body_bytes // len(chunk)) + 2
    response = client.post(
        "/v1/jobs",
        content=(chunk for _ in range(chunks)),
        headers={**auth, "Content-Type": "application/json"},
    )

    assert response.status_code == 413
    assert counts(engine) == (0, 0)


def test_another_tenants_job_is_404(client, auth, engine) -> None:
    other = new_tenant(engine, "globex")
    theirs = client.post(
        "/v1/jobs", json=CHAT, headers={"Authorization": f"Bearer {other.api_key}"}
    ).json()

    for response in (
        client.get(f"/v1/jobs/{theirs['id']}", headers=auth),
        client.post(f"/v1/jobs/{theirs['id']}/cancel", headers=auth),
    ):
        assert response.status_code == 404
        assert theirs["id"] in response.json()["error"]["message"]
        assert "input" not in response.text
    assert client.get("/v1/jobs", headers=auth).json()["data"] == []


def test_bad_query_parameters_are_422(client, auth) -> None:
    assert client.get("/v1/jobs", params={"status": "lost"}, headers=auth).status_code == 422
    assert client.get("/v1/jobs", params={"limit": 0}, headers=auth).status_code == 422
    response = client.get("/v1/jobs", params={"cursor": "garbage!"}, headers=auth)
    assert response.status_code == 422
    assert response.json()["error"]["errors"][0]["field"] == "cursor"


def test_idempotency_key_too_long_is_422(client, auth, engine) -> None:
    response = client.post("/v1/jobs", json=CHAT, headers={**auth, "Idempotency-Key": "k" * 256})

    assert response.status_code == 422
    assert counts(engine) == (0, 0)


def test_unknown_path_is_json_404(client) -> None:
    response = client.get("/v2/nothing")
    assert response.status_code == 404
    assert response.json()["error"]["type"] == "not_found"
