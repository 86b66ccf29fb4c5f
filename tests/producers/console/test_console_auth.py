"""The console's sign-in, sessions, roles and CSRF, without a browser."""

import time

import pytest
from fastapi.testclient import TestClient
from itsdangerous import TimestampSigner, URLSafeTimedSerializer
from sqlalchemy import select

from infra.db import make_sessions
from infra.route_control import paused
from producers import Producer
from schema.tables import AuditEntry
from store.admin_keys import revoke_admin_key
from tests.producers.console.conftest import admin_key, csrf_of, sign_in

PAGES = [
    "/console",
    "/console/dead-letters",
    "/console/jobs",
    "/console/routes",
    "/console/webhooks",
    "/console/tenants",
    "/console/audit",
]


def test_the_sign_in_page_asks_for_an_admin_key(client) -> None:
    response = client.get("/console/sign-in")
    assert response.status_code == 200
    assert 'name="key"' in response.text


def test_sign_in_sets_a_signed_strict_httponly_cookie_that_expires(client, engine) -> None:
    key = admin_key(engine, "alice", "operator").key
    response = client.post("/console/sign-in", data={"key": key}, follow_redirects=False)

    assert response.status_code == 303
    cookie = response.headers["set-cookie"].lower()
    for part in ("genq_console=", "httponly", "samesite=strict", "max-age=28800", "path=/console"):
        assert part in cookie
    assert "secure" not in cookie
    assert key not in response.headers["set-cookie"]


def test_the_cookie_is_secure_over_https(producer: Producer, engine) -> None:
    from producers.api import create_app

    key = admin_key(engine, "alice", "operator").key
    with TestClient(create_app(producer), base_url="https://genq.test") as client:
        response = client.post("/console/sign-in", data={"key": key}, follow_redirects=False)
    assert "secure" in response.headers["set-cookie"].lower()


@pytest.mark.parametrize("key", ["gq_admin_nope", "", "gq_live_tenantish"])
def test_a_wrong_key_is_refused(client, key: str) -> None:
    response = client.post("/console/sign-in", data={"key": key}, follow_redirects=False)
    assert response.status_code == 401
    assert "set-cookie" not in response.headers


@pytest.mark.parametrize(
    "headers",
    [
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},
        {"Origin": "https://evil.example"},
    ],
)
def test_a_sign_in_posted_from_another_site_is_refused(client, engine, headers) -> None:
    key = admin_key(engine, "lured", "operator").key
    response = client.post(
        "/console/sign-in", data={"key": key}, headers=headers, follow_redirects=False
    )
    assert response.status_code == 403
    assert "set-cookie" not in response.headers


def test_a_sign_in_from_this_site_is_taken(client, engine) -> None:
    key = admin_key(engine, "at-home", "operator").key
    headers = {"Sec-Fetch-Site": "same-origin", "Origin": "http://testserver"}
    response = client.post(
        "/console/sign-in", data={"key": key}, headers=headers, follow_redirects=False
    )
    assert response.status_code == 303


def test_a_tenant_key_does_not_sign_in(client, tenant) -> None:
    response = client.post("/console/sign-in", data={"key": tenant.api_key})
    assert response.status_code == 401


@pytest.mark.parametrize("path", PAGES)
def test_every_page_sends_a_stranger_to_sign_in(client, path: str) -> None:
    response = client.get(path, follow_redirects=False)
    assert (response.status_code, response.headers["location"]) == (303, "/console/sign-in")


def test_htmx_is_told_to_go_to_sign_in(client) -> None:
    response = client.get("/console", headers={"HX-Request": "true"})
    assert response.headers["HX-Redirect"] == "/console/sign-in"


@pytest.mark.parametrize("path", PAGES)
def test_a_signed_in_viewer_sees_every_page(client, as_role, path: str) -> None:
    as_role("viewer")
    response = client.get(path)
    assert response.status_code == 200
    assert "script-src 'self'" in response.headers["content-security-policy"]


def test_an_expired_session_goes_back_to_sign_in(client, engine) -> None:
    sign_in(client, admin_key(engine, "alice", "operator").key)
    sessions = client.app.state.console_sessions

    class NineHoursAgo(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(time.time()) - sessions.max_age_s - 60

    stale = URLSafeTimedSerializer(
        sessions.serializer.secret_key, salt="genq.console.session", signer=NineHoursAgo
    ).dumps({"name": "alice", "csrf": "x"})
    client.cookies.clear()
    client.cookies.set("genq_console", stale, path="/console")

    response = client.get("/console", follow_redirects=False)
    assert response.headers["location"] == "/console/sign-in"


def test_a_forged_cookie_goes_back_to_sign_in(client) -> None:
    forged = URLSafeTimedSerializer("not-the-secret", salt="genq.console.session").dumps(
        {"name": "alice", "csrf": "x"}
    )
    client.cookies.set("genq_console", forged, path="/console")
    assert client.get("/console", follow_redirects=False).status_code == 303


def test_revoking_the_key_ends_its_sessions(client, engine) -> None:
    sign_in(client, admin_key(engine, "alice", "operator").key)
    with make_sessions(engine).begin() as session:
        revoke_admin_key(session, "alice")
    assert client.get("/console", follow_redirects=False).status_code == 303


def test_sign_out_ends_the_session(client, as_role) -> None:
    csrf = as_role("operator")
    response = client.post("/console/sign-out", data={"csrf": csrf}, follow_redirects=False)
    assert response.headers["location"] == "/console/sign-in"
    assert client.get("/console", follow_redirects=False).status_code == 303


def test_a_form_without_its_csrf_token_is_refused(client, as_role, producer) -> None:
    csrf = as_role("operator")
    for data in ({}, {"csrf": "forged"}, {"csrf": csrf[:-1]}):
        response = client.post("/console/routes/openai/pause", data=data)
        assert response.status_code == 403
        assert "did not come from the console" in response.text
    assert paused(producer.redis, ["openai"]) == {}

    response = client.post("/console/routes/openai/pause", data={"csrf": csrf})
    assert response.status_code == 200
    assert paused(producer.redis, ["openai"])["openai"]["by"] == "admin:operator-alice"


def test_a_viewer_sees_no_change_controls_and_is_refused_by_hand(client, as_role, producer) -> None:
    csrf = as_role("viewer")
    for path in ("/console/routes", "/console/dead-letters", "/console/webhooks"):
        html = client.get(path).text
        for control in ("Pause", "Dry run", "Requeue", "Resend", "Enable", "Recover"):
            assert control not in html, (path, control)

    for path in (
        "/console/routes/openai/pause",
        "/console/dead-letters/dry-run",
        "/console/jobs/job_x/cancel",
        "/console/webhooks/deliveries/whd_x/resend",
    ):
        response = client.post(path, data={"csrf": csrf, "scope": "matching"})
        assert response.status_code == 403, path
        assert "is a viewer" in response.text
    assert paused(producer.redis, ["openai"]) == {}


def test_route_actions_are_audited_under_the_key_name(client, as_role, engine) -> None:
    csrf = as_role("operator")
    for action in ("pause", "resume", "close-circuit"):
        client.post(f"/console/routes/openai/{action}", data={"csrf": csrf})

    with make_sessions(engine)() as session:
        entries = session.execute(select(AuditEntry.actor, AuditEntry.action)).all()
    assert sorted(entries) == [
        ("admin:operator-alice", "route.close_circuit"),
        ("admin:operator-alice", "route.pause"),
        ("admin:operator-alice", "route.resume"),
    ]
    assert "route.pause" in client.get("/console/audit?by=alice").text


def test_the_page_carries_the_token_htmx_sends(client, as_role) -> None:
    csrf = as_role("operator")
    assert csrf_of(client.get("/console/routes").text) == csrf
    assert f'"X-CSRF-Token": "{csrf}"' in client.get("/console").text
