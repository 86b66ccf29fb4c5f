"""The overview's counts: jobs per route by status, and finished and failed jobs per
slice of the window, counted in SQL on PostgreSQL and SQLite alike."""

from datetime import timedelta

from sqlalchemy import update

from schema.jobs import JobCreate
from schema.tables import Job, WebhookEndpoint, utcnow
from schema.webhooks import EndpointCreate
from store import overview
from tests.producers.test_api import CHAT


def test_activity_counts_by_status_and_by_slice(producer, tenant) -> None:
    now = utcnow()
    ids = [producer.submit(tenant.tenant_id, JobCreate(**CHAT))[0].id for _ in range(4)]
    ended = {
        ids[0]: ("succeeded", now - timedelta(minutes=52)),
        ids[1]: ("failed", now - timedelta(minutes=12)),
        ids[2]: ("dead_lettered", now - timedelta(minutes=5)),
    }
    with producer.sessions.begin() as session:
        for job_id, (status, at) in ended.items():
            session.execute(
                update(Job).where(Job.id == job_id).values(status=status, finished_at=at)
            )

    with producer.sessions() as session:
        (openai,) = overview.activity(session, timedelta(hours=1), buckets=6, now=now)

    assert openai.route == "openai"
    assert openai.by_status == {"queued": 1, "succeeded": 1, "failed": 1, "dead_lettered": 1}
    assert openai.finished == [1, 0, 0, 0, 1, 1]
    assert openai.failed == [0, 0, 0, 0, 1, 1]
    assert openai.error_rate == [0.0, 0.0, 0.0, 0.0, 1.0, 1.0]


def test_failing_endpoints_lists_disabled_and_failing_ones(producer, tenant, hooks) -> None:
    _, failing = (
        producer.webhooks.create_endpoint(
            tenant.tenant_id, EndpointCreate(url=hooks.url(hooks.new()), description=name)
        )
        for name in ("healthy", "failing")
    )
    with producer.sessions.begin() as session:
        session.execute(
            update(WebhookEndpoint)
            .where(WebhookEndpoint.id == failing.id)
            .values(failing_since=utcnow())
        )

    with producer.sessions() as session:
        found = overview.failing_endpoints(session)
    assert [e.id for e in found] == [failing.id]
