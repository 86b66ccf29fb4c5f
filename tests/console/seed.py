"""Data for the console's page tests: a finished job, a dead letter and a webhook endpoint
whose text holds HTML and script, and the secrets no page may show."""

from dataclasses import dataclass

from sqlalchemy import Engine

from infra.db import make_sessions
from producers import Producer
from schema.jobs import JobCreate
from schema.tables import DeadLetter, utcnow
from schema.webhooks import EndpointCreate
from store.ids import new_id
from store.tenants import NewTenant
from tests.conftest import SIM_KEY, Hooks
from tests.producers.console.conftest import admin_key
from tests.waiting import eventually

HOSTILE = '<script>alert("xss")</script><img src=x onerror="alert(2)"><b id="injected">bold</b>'


@dataclass(frozen=True)
class Seeded:
    job_id: str
    letter_id: str
    endpoint_id: str
    operator_key: str
    viewer_key: str
    secrets: tuple[str, ...]


def seed(producer: Producer, engine: Engine, tenant: NewTenant, hooks: Hooks) -> Seeded:
    """Everything the pages show, HTML in every free-text field; a worker must be running."""
    endpoint = producer.webhooks.create_endpoint(
        tenant.tenant_id, EndpointCreate(url=hooks.url(hooks.new()), description=HOSTILE)
    )
    job, _ = producer.submit(
        tenant.tenant_id,
        JobCreate(
            model="openai/gpt-4o-mini",
            input={"messages": [{"role": "user", "content": HOSTILE}], "max_tokens": 16},
            metadata={"note": HOSTILE},
        ),
    )
    eventually(
        lambda: producer.get(tenant.tenant_id, job.id), lambda j: j and j.status == "succeeded"
    )
    now = utcnow()
    letter_id = new_id("dlq")
    with make_sessions(engine).begin() as session:
        session.add(
            DeadLetter(
                id=letter_id,
                source="job",
                job_id=job.id,
                tenant_id=tenant.tenant_id,
                route="openai",
                model="gpt-4o-mini",
                error_class="server_error",
                error_message=f"HTTP 500: {HOSTILE}",
                attempts=[],
                first_failed_at=now,
                last_failed_at=now,
            )
        )
    operator = admin_key(engine, "oncall-op", "operator").key
    viewer = admin_key(engine, "watcher", "viewer").key
    secrets = (
        tenant.api_key,
        tenant.webhook_secret,
        endpoint.secret or "",
        SIM_KEY,
        operator,
        viewer,
    )
    return Seeded(job.id, letter_id, endpoint.id, operator, viewer, secrets)
