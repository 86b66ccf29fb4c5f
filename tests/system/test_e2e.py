"""Whole paths on real parts: HTTP -> outbox -> Redis -> worker -> simulator -> store."""

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import dramatiq
import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import select

from producers import Producer
from producers.api import create_app
from schema.settings import Settings
from schema.tables import OutboxMessage
from simulator.server import ThreadedServer
from tests.producers.test_api import CHAT, counts
from tests.waiting import eventually
from workers.scheduler import build_scheduler

DEAD_REDIS = "redis://127.0.0.1:9/0"


@pytest.fixture
def api_url(producer: Producer) -> Iterator[str]:
    with ThreadedServer(create_app(producer)) as server:
        yield server.url


@contextmanager
def running_scheduler(settings: Settings) -> Iterator[None]:
    scheduler, _ = build_scheduler(settings)
    thread = threading.Thread(target=scheduler.start, daemon=True)
    thread.start()
    try:
        yield
    finally:
        scheduler.shutdown(wait=True)
        thread.join(10)


def finished(api_url: str, auth: dict[str, str], job_id: str) -> dict:
    return eventually(
        lambda: httpx.get(f"{api_url}/v1/jobs/{job_id}", headers=auth).json(),
        lambda job: job["status"] in ("succeeded", "failed"),
    )


@pytest.mark.parametrize("engine", ["postgresql"], indirect=True)
def test_http_to_worker_to_simulator_to_postgresql(api_url, auth, worker, sim_calls) -> None:
    with httpx.Client(base_url=api_url, headers=auth) as client:
        ids = [client.post("/v1/jobs", json=CHAT).json()["id"] for _ in range(5)]
        batch = client.post("/v1/jobs/batch", json={"jobs": [CHAT] * 3}).json()["data"]

    jobs = [finished(api_url, auth, job_id) for job_id in ids + [j["id"] for j in batch]]

    assert [job["status"] for job in jobs] == ["succeeded"] * 8
    assert all(job["usage"]["total_tokens"] > 0 for job in jobs)
    assert sim_calls() == 8


def test_broker_down_at_enqueue_loses_no_job(settings, engine, routes, auth, worker) -> None:
    down = Producer(settings, engine=engine, routes=routes, broker=_dead_broker(settings))
    with ThreadedServer(create_app(down)) as server:
        response = httpx.post(f"{server.url}/v1/jobs", json=CHAT, headers=auth)
        assert response.status_code == 202
        job_id = response.json()["id"]
        assert httpx.get(f"{server.url}/v1/jobs/{job_id}", headers=auth).json()["status"] == (
            "queued"
        )

        with running_scheduler(settings):
            job = finished(server.url, auth, job_id)

    assert job["status"] == "succeeded"
    with down.sessions() as session:
        row = session.scalars(select(OutboxMessage)).one()
    assert row.sent_at is not None
    assert row.send_attempts == 1
    assert "ConnectionError" in row.last_error


def test_database_down_is_503_with_retry_after_and_nothing_sent(settings, routes, redis_url):
    from infra.brokers import make_broker
    from infra.db import make_engine

    broker = make_broker(settings, consumer=False)
    unreachable = make_engine("postgresql+psycopg://postgres@127.0.0.1:9/genq")
    down = Producer(settings, engine=unreachable, routes=routes, broker=broker)
    with ThreadedServer(create_app(down)) as server:
        response = httpx.post(
            f"{server.url}/v1/jobs", json=CHAT, headers={"Authorization": "Bearer gq_x"}
        )
        ready = httpx.get(f"{server.url}/readyz")

    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"
    assert response.json()["error"]["type"] == "unavailable"
    assert ready.status_code == 503
    assert ready.json()["checks"]["database"].startswith("error")
    assert broker.client.dbsize() == 0


def test_commit_failure_leaves_no_half_done_job(settings, engine, routes, auth, monkeypatch):
    """A failure between the job insert and the commit rolls both rows back."""
    from store import outbox

    def broken_stage(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise RuntimeError("disk full")

    monkeypatch.setattr(outbox, "stage", broken_stage)
    producer = Producer(settings, engine=engine, routes=routes, broker=_dead_broker(settings))
    with ThreadedServer(create_app(producer)) as server:
        response = httpx.post(f"{server.url}/v1/jobs", json=CHAT, headers=auth)

    assert response.status_code == 500
    assert "disk full" not in response.text
    assert counts(engine) == (0, 0)


def _dead_broker(settings: Settings) -> dramatiq.Broker:
    from infra.brokers import make_broker

    dead = settings.model_copy(update={"redis_url": SecretStr(DEAD_REDIS)})
    return make_broker(dead, consumer=False)


def test_settings_secrets_never_print() -> None:
    settings = Settings(
        database_url=SecretStr("postgresql://genq:hunter2@db/genq"),
        redis_url=SecretStr("redis://:hunter2@cache:6379/0"),
        _env_file=None,
    )
    assert "hunter2" not in repr(settings)
    assert "hunter2" not in str(settings.model_dump())
