"""Fixtures for the infrastructure tests."""

import uuid
from collections.abc import Callable, Iterator

import pytest
import redis
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.pool import NullPool

from infra.db import make_engine
from tests.waiting import eventually


@pytest.fixture
def client_without(redis_url: str) -> Iterator[Callable[[str], redis.Redis]]:
    """Make clients whose Redis user may do everything but the given commands."""
    admin = redis.Redis.from_url(redis_url)
    names: list[str] = []

    def make(*commands: str) -> redis.Redis:
        names.append(f"genq-test-{uuid.uuid4().hex}")
        admin.acl_setuser(
            names[-1], enabled=True, nopass=True, keys=["*"], channels=["*"],
            commands=["+@all", *(f"-{command}" for command in commands)],
        )  # fmt: skip
        return redis.Redis.from_url(redis_url, username=names[-1])

    yield make
    for name in names:
        admin.acl_deluser(name)


def drop_connections(engine: Engine) -> None:
    """End every other session on the engine's database, as a server restart would, and
    wait until they are gone."""
    admin = create_engine(engine.url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    others = "datname = current_database() AND pid <> pg_backend_pid()"
    with admin.connect() as connection:
        connection.execute(
            text(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE {others}")
        )
        count = text(f"SELECT count(*) FROM pg_stat_activity WHERE {others}")
        eventually(lambda: connection.execute(count).scalar(), lambda left: left == 0)
    admin.dispose()


@pytest.fixture
def own_engine(pg_url: str, pg_store: Engine) -> Iterator[Engine]:
    engine = make_engine(pg_url)
    yield engine
    engine.dispose()
    # The test ended every session on the database, the suite's shared pool's too.
    pg_store.dispose()
