"""Admin key roles on the admin API, and the routes and jobs endpoints it shares with the
console and the CLI."""

import pytest
from sqlalchemy import Engine, select

from infra.db import make_sessions
from infra.route_control import paused
from schema.tables import AuditEntry
from store.admin_keys import create_admin_key
from tests.producers.test_api import CHAT


def bearer(engine: Engine, name: str, role: str) -> dict[str, str]:
    with make_sessions(engine).begin() as session:
        created = create_admin_key(session, name, role)  # type: ignore[arg-type]
    return {"Authorization": f"Bearer {created.key}"}


@pytest.mark.parametrize(
    "path, body",
    [
        ("/admin/dead-letters/requeue", {"filter": {}, "dry_run": True}),
        ("/admin/dead-letters/purge", {"filter": {}, "confirm": True}),
        ("/admin/routes/openai/pause", None),
        ("/admin/jobs/job_x/cancel", None),
    ],
)
def test_a_viewer_key_gets_403_on_every_change(client, engine, path, body) -> None:
    viewer = bearer(engine, "val", "viewer")
    response = client.post(path, json=body, headers=viewer)
    assert response.status_code == 403
    assert response.json()["error"]["type"] == "forbidden"


def test_a_viewer_key_reads(client, engine) -> None:
    viewer = bearer(engine, "val", "viewer")
    for path in ("/admin/dead-letters", "/admin/audit", "/admin/routes", "/admin/jobs"):
        assert client.get(path, headers=viewer).status_code == 200, path


def test_existing_keys_are_operators(client, admin, producer) -> None:
    assert client.post("/admin/routes/openai/pause", headers=admin).status_code == 204
    assert paused(producer.redis, ["openai"])["openai"]["by"] == "admin:oncall"
    routes = client.get("/admin/routes", headers=admin).json()["data"]
    assert next(r for r in routes if r["name"] == "openai")["paused"]["by"] == "admin:oncall"
    assert client.post("/admin/routes/openai/resume", headers=admin).status_code == 204
    assert client.post("/admin/routes/nope/pause", headers=admin).status_code == 404


def test_an_operator_cancels_any_tenants_job_audited(client, admin, auth, engine) -> None:
    job_id = client.post("/v1/jobs", json=CHAT, headers=auth).json()["id"]

    assert client.post(f"/admin/jobs/{job_id}/cancel", headers=admin).status_code == 204
    assert client.post(f"/admin/jobs/{job_id}/cancel", headers=admin).status_code == 409
    assert client.get(f"/admin/jobs/{job_id}", headers=admin).json()["status"] == "canceled"
    found = client.get("/admin/jobs?status=canceled", headers=admin).json()["data"]
    assert [j["id"] for j in found] == [job_id]
    with make_sessions(engine)() as session:
        entry = session.scalars(select(AuditEntry)).one()
    assert (entry.actor, entry.action, entry.targets) == ("admin:oncall", "job.cancel", [job_id])


def test_the_audit_log_filters_by_actor_and_action(client, admin, engine) -> None:
    client.post("/admin/routes/openai/pause", headers=admin)
    client.post("/admin/dead-letters/purge", json={"filter": {}, "dry_run": True}, headers=admin)

    by_action = client.get("/admin/audit?action=route", headers=admin).json()["data"]
    nobody = client.get("/admin/audit?by=mallory", headers=admin).json()["data"]
    assert [e["action"] for e in by_action] == ["route.pause"]
    assert nobody == []
