"""The admin HTTP API: admin keys only, dead letters listed, read, requeued and purged,
every action in the audit log, and bad input as JSON 4xx."""

import pytest
from dramatiq import Message
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from genq.cli import app
from infra.db import make_sessions
from schema.names import JOBS_QUEUE
from store.admin_keys import revoke_admin_key
from tests.store.test_dlq import (
    SECRET,
    audit_entries,
    dead_letter_through_the_worker,
    stored_letter,
)
from tests.workers.test_worker import job_of

LETTERS = "/admin/dead-letters"


def error_of(response) -> dict:  # type: ignore[no-untyped-def,type-arg]
    body = response.json()
    assert set(body) == {"error"}
    return body["error"]


def test_only_a_live_admin_key_opens_the_admin_api(client: TestClient, auth, admin, engine) -> None:
    for headers in ({}, auth, {"Authorization": "Bearer gq_admin_not-a-key-at-all"}):
        response = client.get(LETTERS, headers=headers)
        assert response.status_code == 401
        assert error_of(response)["type"] == "unauthorized"
    assert client.get("/v1/jobs", headers=admin).status_code == 401
    assert client.get(LETTERS, headers=admin).status_code == 200

    with make_sessions(engine).begin() as session:
        revoke_admin_key(session, "oncall")

    assert client.get(LETTERS, headers=admin).status_code == 401


def test_letters_are_filtered_paged_and_read(client, admin, producer, tenant) -> None:
    stored_letter(producer, tenant.tenant_id)
    stored_letter(producer, tenant.tenant_id)
    _, other = stored_letter(
        producer, tenant.tenant_id, model="anthropic/claude-haiku-4-5", error_class="auth_error"
    )

    first = client.get(LETTERS, params={"limit": 2}, headers=admin).json()
    rest = client.get(
        LETTERS, params={"limit": 2, "cursor": first["next_cursor"]}, headers=admin
    ).json()
    filtered = client.get(
        LETTERS,
        params={"route": "anthropic", "tenant": "acme", "since": "1h", "source": "job"},
        headers=admin,
    ).json()

    assert len(first["data"]) == 2 and first["next_cursor"]
    assert len(rest["data"]) == 1 and rest["next_cursor"] is None
    assert {letter["id"] for letter in first["data"] + rest["data"]} >= {other}
    assert [letter["id"] for letter in filtered["data"]] == [other]
    letter = client.get(f"{LETTERS}/{other}", headers=admin).json()
    assert (letter["error_class"], letter["tenant_name"], len(letter["attempts"])) == (
        "auth_error",
        "acme",
        1,
    )
    missing = client.get(f"{LETTERS}/dlq_missing", headers=admin)
    assert missing.status_code == 404
    assert error_of(missing)["message"] == "no dead letter 'dlq_missing'"


def test_secrets_never_leave_the_api(client, admin, producer, tenant) -> None:
    _, letter_id = stored_letter(producer, tenant.tenant_id, message=f"bad key {SECRET}")

    response = client.get(f"{LETTERS}/{letter_id}", headers=admin)

    assert response.status_code == 200
    assert SECRET not in response.text


def test_a_dramatiq_dead_letter_shows_up_in_the_list(client, admin, producer) -> None:
    broker = producer.broker
    message = broker.enqueue(Message(JOBS_QUEUE, "gone_actor", (), {"n": 1}, {}))
    redis_id = message.options["redis_message_id"]
    broker.do_fetch(JOBS_QUEUE, 1)  # as a worker would, then rejects it: Dramatiq's own nack
    broker.do_nack(JOBS_QUEUE, redis_id)
    assert broker.client.zcard(f"genq:{JOBS_QUEUE}.XQ") == 1

    listed = client.get(LETTERS, params={"source": "dramatiq"}, headers=admin).json()["data"]

    assert [(letter["actor_name"], letter["queue_name"]) for letter in listed] == [
        ("gone_actor", JOBS_QUEUE)
    ]
    assert listed[0]["message"]["kwargs"] == {"n": 1}
    assert broker.client.zcard(f"genq:{JOBS_QUEUE}.XQ") == 0


def test_requeue_over_http_runs_the_job_once_and_audits_the_admin(
    client, auth, admin, routes, sim_control, worker, engine
) -> None:
    job_id, letter_id = dead_letter_through_the_worker(client, auth, routes, sim_control)

    first = client.post(f"{LETTERS}/requeue", json={"ids": [letter_id]}, headers=admin)
    again = client.post(f"{LETTERS}/requeue", json={"ids": [letter_id]}, headers=admin)

    assert first.status_code == 200, first.text
    assert (first.json()["count"], first.json()["targets"]) == (1, [letter_id])
    assert (again.json()["count"], again.json()["skipped"]) == (
        0,
        {letter_id: "already requeued"},
    )
    assert job_of(client, auth, job_id, {"succeeded"})["attempts"] == 2
    assert client.get(f"{LETTERS}/{letter_id}", headers=admin).json()["status"] == "requeued"
    audit = client.get("/admin/audit", headers=admin).json()["data"]
    assert [(e["actor"], e["action"], e["count"]) for e in audit] == [
        ("admin:oncall", "requeue", 0),
        ("admin:oncall", "requeue", 1),
    ]
    assert audit[1]["filter"] == {"ids": [letter_id]}


def test_purge_by_filter_needs_confirm_and_a_dry_run_changes_nothing(
    client, admin, producer, tenant, engine
) -> None:
    _, letter_id = stored_letter(producer, tenant.tenant_id)
    chosen = {"filter": {"route": "openai", "error_class": "server_error"}}

    unconfirmed = client.post(f"{LETTERS}/purge", json=chosen, headers=admin)
    dry = client.post(f"{LETTERS}/purge", json={**chosen, "dry_run": True}, headers=admin)
    still = client.get(f"{LETTERS}/{letter_id}", headers=admin).json()["status"]
    done = client.post(f"{LETTERS}/purge", json={**chosen, "confirm": True}, headers=admin)

    assert unconfirmed.status_code == 422
    assert error_of(unconfirmed)["errors"][0]["field"] == "confirm"
    assert (dry.status_code, dry.json()["dry_run"], dry.json()["targets"]) == (
        200,
        True,
        [letter_id],
    )
    assert still == "open"
    assert (done.status_code, done.json()["targets"]) == (200, [letter_id])
    purged = client.get(LETTERS, params={"status": "purged"}, headers=admin).json()["data"]
    assert [letter["id"] for letter in purged] == [letter_id]
    assert [(e.action, e.dry_run, e.count) for e in audit_entries(engine)] == [
        ("purge", True, 1),
        ("purge", False, 1),
    ]
    assert audit_entries(engine)[1].filter == {
        "route": "openai",
        "error_class": "server_error",
        "status": "open",
    }


def test_stats_count_by_route_and_error_class(client, admin, producer, tenant) -> None:
    stored_letter(producer, tenant.tenant_id)
    stored_letter(producer, tenant.tenant_id, error_class="rate_limited")

    response = client.get(f"{LETTERS}/stats", params={"since": "2h"}, headers=admin)

    assert response.status_code == 200
    found = response.json()
    assert (found["total"], found["open"]) == (2, 2)
    assert found["by_route"] == [{"key": "openai", "count": 2, "open": 2}]
    assert {row["key"] for row in found["by_error_class"]} == {"server_error", "rate_limited"}


@pytest.mark.parametrize(
    ("path", "params", "field"),
    [
        (LETTERS, {"since": "yesterday"}, "since"),
        (LETTERS, {"status": "lost"}, "status"),
        (LETTERS, {"source": "kafka"}, "source"),
        (LETTERS, {"tenant": "nobody"}, "tenant"),
        (LETTERS, {"cursor": "garbage"}, "cursor"),
        (LETTERS, {"limit": 0}, "limit"),
        (f"{LETTERS}/stats", {"since": "soon"}, "since"),
        (f"{LETTERS}/stats", {"bucket": "week"}, "bucket"),
        ("/admin/audit", {"limit": 10_000}, "limit"),
    ],
)
def test_bad_query_parameters_are_422_naming_the_field(client, admin, path, params, field) -> None:
    response = client.get(path, params=params, headers=admin)

    assert response.status_code == 422
    assert [e["field"] for e in error_of(response)["errors"]] == [field]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "body"),
        ({"ids": []}, "ids"),
        ({"ids": ["dlq_x"], "filter": {"route": "openai"}, "dry_run": True}, "body"),
        ({"filter": {"route": "openai"}}, "confirm"),
        ({"filter": {"since": "later"}, "dry_run": True}, "filter.since"),
        ({"filter": {"colour": "red"}, "dry_run": True}, "filter.colour"),
        ({"filter": {"status": "purged"}, "dry_run": True}, "filter.status"),
        ({"filter": {"tenant": "nobody"}, "dry_run": True}, "filter.tenant"),
    ],
)
@pytest.mark.parametrize("action", ["requeue", "purge"])
def test_bad_action_bodies_are_422_and_change_nothing(
    client, admin, engine, action, body, field
) -> None:
    response = client.post(f"{LETTERS}/{action}", json=body, headers=admin)

    assert response.status_code == 422, response.text
    assert field in [e["field"] for e in error_of(response)["errors"]]
    assert audit_entries(engine) == []


def test_unknown_ids_are_404_and_malformed_json_is_422(client, admin) -> None:
    missing = client.post(f"{LETTERS}/requeue", json={"ids": ["dlq_missing"]}, headers=admin)
    malformed = client.post(
        f"{LETTERS}/purge",
        content=b"{not json",
        headers={**admin, "Content-Type": "application/json"},
    )

    assert (missing.status_code, error_of(missing)["type"]) == (404, "not_found")
    assert malformed.status_code == 422
    assert error_of(malformed)["type"] == "invalid_request"


def test_admin_keys_are_created_and_revoked_from_the_cli(client, engine, monkeypatch) -> None:
    monkeypatch.setenv("GENQ_DATABASE_URL", engine.url.render_as_string(hide_password=False))
    runner = CliRunner()

    created = runner.invoke(app, ["admin", "keys", "create", "alice"])
    key = created.stdout.split("key ")[-1].strip()
    headers = {"Authorization": f"Bearer {key}"}

    assert created.exit_code == 0, created.output
    assert key.startswith("gq_admin_")
    assert client.get(LETTERS, headers=headers).status_code == 200
    assert runner.invoke(app, ["admin", "keys", "create", "alice"]).exit_code == 2
    assert runner.invoke(app, ["admin", "keys", "revoke", "alice"]).exit_code == 0
    assert client.get(LETTERS, headers=headers).status_code == 401
    assert "revoked" in runner.invoke(app, ["admin", "keys", "list"]).stdout
    assert runner.invoke(app, ["admin", "keys", "revoke", "alice"]).exit_code == 2
