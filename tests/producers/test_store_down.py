"""A store that is down, stuck or locked: the API answers 503 with Retry-After, quickly
(bounded by the producer's database timeouts), and nothing is stored."""

import socket
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import Engine, func, select, text

from producers import Producer
from producers.api import create_app
from schema.routes import Routes
from schema.settings import Settings
from schema.tables import Job
from store.tenants import NewTenant

CHAT = {
    "model": "openai/gpt-4o-mini",
    "input": {"messages": [{"role": "user", "content": "Hello"}], "max_tokens": 16},
}


@contextmanager
def blackhole() -> Iterator[int]:
    """A TCP port that completes the handshake (the kernel's backlog) and never answers."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(16)
        yield int(server.getsockname()[1])


def api_on(database_url: str, redis_url: str, routes: Routes, tmp_path: Path) -> TestClient:
    """The API on its own producer, built from settings as ``genq api`` builds it."""
    settings = Settings(
        var_dir=tmp_path / "var",
        database_url=SecretStr(database_url),
        redis_url=SecretStr(redis_url),
        api_db_statement_timeout_s=1,
        _env_file=None,
    )
    return TestClient(create_app(Producer(settings, routes=routes)), raise_server_exceptions=False)


def assert_unavailable(response) -> None:  # type: ignore[no-untyped-def]
    assert response.status_code == 503, response.text
    assert response.json()["error"]["type"] == "unavailable"
    assert int(response.headers["Retry-After"]) > 0


def test_a_database_that_never_answers_is_a_503(redis_url, routes, tmp_path: Path) -> None:
    with blackhole() as port:
        url = f"postgresql+psycopg://genq@127.0.0.1:{port}/genq"
        with api_on(url, redis_url, routes, tmp_path) as client:
            headers = {"Authorization": "Bearer gq_anything"}
            assert_unavailable(client.post("/v1/jobs", json=CHAT, headers=headers))
            assert_unavailable(client.get("/v1/jobs", headers=headers))


@contextmanager
def jobs_locked(engine: Engine) -> Iterator[None]:
    """Another session holds the jobs table so that no one else may write it."""
    if engine.dialect.name == "sqlite":
        holder = sqlite3.connect(engine.url.database, isolation_level=None)
        holder.execute("BEGIN EXCLUSIVE")
        try:
            yield
        finally:
            holder.rollback()
            holder.close()
        return
    with engine.connect() as connection, connection.begin() as transaction:
        connection.execute(text("LOCK TABLE jobs IN ACCESS EXCLUSIVE MODE"))
        yield
        transaction.rollback()


def test_a_locked_store_is_a_503_and_nothing_is_stored(
    engine: Engine, redis_url, routes, tenant: NewTenant, tmp_path: Path
) -> None:
    url = engine.url.render_as_string(hide_password=False)
    headers = {"Authorization": f"Bearer {tenant.api_key}"}
    with api_on(url, redis_url, routes, tmp_path) as client, jobs_locked(engine):
        assert_unavailable(client.post("/v1/jobs", json=CHAT, headers=headers))

    with engine.connect() as connection:
        assert connection.scalar(select(func.count()).select_from(Job)) == 0
