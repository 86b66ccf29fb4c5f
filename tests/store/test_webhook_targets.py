"""The tenant's webhook endpoints, cached per process under a version in Redis that every
endpoint change replaces after its commit."""

import logging
import socket

import pytest
from sqlalchemy import Engine, event

from infra.db import make_sessions
from infra.redis_conn import connect
from schema.names import WEBHOOK_PREFIX
from schema.settings import Settings
from schema.webhooks import EndpointCreate, EndpointUpdate
from store import webhook_targets
from store.tenants import NewTenant
from store.webhook_targets import EndpointCache
from store.webhooks import Webhooks
from tests.workers.test_webhooks import add_endpoint, deliveries_of, run_job


class Reads:
    """Statements run on an engine while counting."""

    def __init__(self, engine: Engine) -> None:
        self.count = 0
        event.listen(engine, "before_cursor_execute", self.seen)

    def seen(self, *_: object) -> None:
        self.count += 1


@pytest.fixture
def service(engine: Engine, redis_url: str, settings: Settings) -> Webhooks:
    sessions = make_sessions(engine)
    webhook_targets.attach(sessions, EndpointCache(connect(redis_url)))
    return Webhooks(sessions, settings, lambda rows: None)


def listed(service: Webhooks, tenant: NewTenant) -> list[str]:
    with service.sessions() as session:
        return [row.url for row in webhook_targets.endpoints(session, tenant.tenant_id)]


def test_a_cached_list_costs_no_query_until_an_endpoint_changes(
    service: Webhooks, tenant: NewTenant, engine: Engine
) -> None:
    first = service.create_endpoint(tenant.tenant_id, EndpointCreate(url="http://127.0.0.1/a"))
    assert listed(service, tenant) == ["http://127.0.0.1/a"]

    reads = Reads(engine)
    again = listed(service, tenant)
    cached_reads = reads.count
    service.update_endpoint(tenant.tenant_id, first.id, EndpointUpdate(url="http://127.0.0.1/b"))
    changed = listed(service, tenant)
    event.remove(engine, "before_cursor_execute", reads.seen)

    assert (again, cached_reads) == (["http://127.0.0.1/a"], 0)
    assert changed == ["http://127.0.0.1/b"]


def test_a_version_redis_lost_is_never_taken_for_the_old_one(
    service: Webhooks, tenant: NewTenant, engine: Engine, redis_url: str
) -> None:
    service.create_endpoint(tenant.tenant_id, EndpointCreate(url="http://127.0.0.1/a"))
    listed(service, tenant)

    connect(redis_url).delete(f"{WEBHOOK_PREFIX}:endpoints:{tenant.tenant_id}")
    reads = Reads(engine)
    listed(service, tenant)
    event.remove(engine, "before_cursor_execute", reads.seen)

    assert reads.count == 1


@pytest.fixture
def dead_redis_url() -> str:
    """A Redis URL on a free port where nothing listens."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"redis://127.0.0.1:{port}/6"


@pytest.fixture
def offline(engine: Engine, settings: Settings, dead_redis_url: str) -> Webhooks:
    """The service, its endpoint cache on a Redis that does not answer."""
    sessions = make_sessions(engine)
    webhook_targets.attach(sessions, EndpointCache(connect(dead_redis_url)))
    return Webhooks(sessions, settings, lambda rows: None)


def test_without_redis_readers_query_and_writers_still_commit(
    offline: Webhooks, tenant: NewTenant, caplog: pytest.LogCaptureFixture
) -> None:
    service = offline
    with caplog.at_level(logging.WARNING, logger="store.webhook_targets"):
        service.create_endpoint(tenant.tenant_id, EndpointCreate(url="http://127.0.0.1/a"))
        found = listed(service, tenant)

    assert found == ["http://127.0.0.1/a"]
    assert "changed but Redis did not answer" in caplog.text
    assert "Redis did not answer; reading the database" in caplog.text


def test_an_endpoint_change_through_the_api_reaches_the_very_next_jobs_event(
    client, auth, worker, hooks
) -> None:
    first = add_endpoint(client, auth, hooks.url(hooks.new()))
    job = run_job(client, auth)
    assert [d["endpoint_id"] for d in deliveries_of(client, auth, job_id=job["id"])] == [
        first["id"]
    ]

    second = add_endpoint(client, auth, hooks.url(hooks.new()))
    job = run_job(client, auth)
    both = {d["endpoint_id"] for d in deliveries_of(client, auth, job_id=job["id"])}

    path = f"/v1/webhook-endpoints/{first['id']}"
    client.patch(path, json={"event_types": ["job.failed"]}, headers=auth).raise_for_status()
    job = run_job(client, auth)
    after_patch = [d["endpoint_id"] for d in deliveries_of(client, auth, job_id=job["id"])]

    client.delete(f"/v1/webhook-endpoints/{second['id']}", headers=auth).raise_for_status()
    job = run_job(client, auth)
    after_delete = deliveries_of(client, auth, job_id=job["id"])

    assert both == {first["id"], second["id"]}
    assert after_patch == [second["id"]]
    assert after_delete == []


def test_a_version_read_before_the_session_costs_it_no_round_trip(
    offline: Webhooks, tenant: NewTenant, engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    offline.create_endpoint(tenant.tenant_id, EndpointCreate(url="http://127.0.0.1/a"))

    def read(version: bytes) -> list[str]:
        with offline.sessions() as session:
            webhook_targets.note_version(session, tenant.tenant_id, version)
            return [row.url for row in webhook_targets.endpoints(session, tenant.tenant_id)]

    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="store.webhook_targets"):
        first = read(b"v1")
        reads = Reads(engine)
        cached = read(b"v1")
        cached_reads = reads.count
        read(b"v2")
        event.remove(engine, "before_cursor_execute", reads.seen)

    assert first == cached == ["http://127.0.0.1/a"]
    assert (cached_reads, reads.count) == (0, 1)
    assert "Redis did not answer" not in caplog.text
