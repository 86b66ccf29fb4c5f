"""Fixtures for the console's tests: signed-in test clients for an operator and a viewer."""

import re
from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from infra.db import make_sessions
from store.admin_keys import NewAdminKey, create_admin_key

CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def admin_key(engine: Engine, name: str, role: str) -> NewAdminKey:
    with make_sessions(engine).begin() as session:
        return create_admin_key(session, name, role)  # type: ignore[arg-type]


def sign_in(client: TestClient, key: str) -> str:
    """Sign ``client`` in with ``key``; return the session's CSRF token."""
    response = client.post("/console/sign-in", data={"key": key}, follow_redirects=False)
    assert response.status_code == 303, response.text
    return csrf_of(client.get("/console").text)


def csrf_of(html: str) -> str:
    found = CSRF.search(html)
    assert found, "the page carries no CSRF token"
    return found[1]


@pytest.fixture
def as_role(engine: Engine, client: TestClient) -> Callable[[str], str]:
    """Sign the test client in as a new key of ``role``; return its CSRF token."""

    def signed_in(role: str) -> str:
        return sign_in(client, admin_key(engine, f"{role}-alice", role).key)

    return signed_in
