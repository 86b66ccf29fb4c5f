"""Fixtures for the API's tests: an admin key, and the ledger hostile-input tests compare."""

import pytest
from sqlalchemy import Engine

from infra.db import make_sessions
from store.admin_keys import create_admin_key
from tests.producers.hostile import Ledger


@pytest.fixture
def admin(engine: Engine) -> dict[str, str]:
    with make_sessions(engine).begin() as session:
        created = create_admin_key(session, "oncall")
    return {"Authorization": f"Bearer {created.key}"}


@pytest.fixture
def ledger(engine: Engine, redis_url: str) -> Ledger:
    return Ledger(engine, redis_url)
