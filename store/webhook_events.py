"""Recording webhook events: one event row per thing that happened, one delivery per
receiving URL, and the messages that send them, all in the caller's transaction: for a
job's own URL, a message naming the delivery; for an endpoint, the endpoint's message
that sends whatever is due to it (``store/webhook_messages.py``).

The body is serialized here, once, so every attempt and every resend sends the same
bytes under the same ``webhook-id``; every secret value the process knows is redacted
from it first (by value only: a shape would mangle a model's output).
"""

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import insert
from sqlalchemy.orm import Session

from infra.scrub import scrub_known, scrub_value
from schema.jobs import JobStatus, WebhookEventType
from schema.settings import Settings
from schema.tables import (
    OutboxMessage,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
    utcnow,
)
from schema.webhooks import TEST_EVENT, DeliveryStatus, EndpointEventType
from store import webhook_messages, webhook_targets
from store.ids import new_id
from store.jobs import view
from store.moves import JobRow
from store.webhook_targets import EndpointRow

EVENT_FOR_STATUS = {
    JobStatus.SUCCEEDED: WebhookEventType.SUCCEEDED,
    JobStatus.FAILED: WebhookEventType.FAILED,
    JobStatus.DEAD_LETTERED: WebhookEventType.FAILED,
    JobStatus.CANCELED: WebhookEventType.CANCELED,
    JobStatus.WAITING: WebhookEventType.STARTED,
}
# Sent only to receivers that ask for them by name.
OPT_IN_EVENTS = frozenset({WebhookEventType.STARTED.value})
ERROR_MESSAGE_MAX = 1000


class Target(NamedTuple):
    """Where a delivery goes: an endpoint (``disabled`` says why, if it is) or a job's URL."""

    endpoint_id: str | None
    url: str
    disabled: str | None = None


# A disabled endpoint still gets its deliveries, failed at once, so that a recover after
# it is enabled again sends what it missed.
DISABLED = "endpoint disabled: "

INSERT_EVENT = insert(WebhookEvent.__table__)
INSERT_DELIVERY = insert(WebhookDelivery.__table__)


def job_event(session: Session, settings: Settings, job: JobRow) -> list[OutboxMessage]:
    """Record the event for the job's status as ``job`` (the row its move returned) has
    it, if anyone listens; return the outbox rows to send after commit."""
    event_type = EVENT_FOR_STATUS.get(JobStatus(job.status))
    if event_type is None:
        return []
    targets = _endpoint_targets(session, job.tenant_id, event_type)
    if job.webhook_url and _wants(job.webhook_events, event_type):
        targets.insert(0, Target(None, job.webhook_url))
    if not targets:
        return []
    data = _job_data(job, settings)
    return record(session, job.tenant_id, event_type, targets, data, job_id=job.id)


def listened(
    status: str, url: str | None, wanted: list[str] | None, endpoints: Sequence[EndpointRow]
) -> bool:
    """Whether a job's move to ``status`` has an event for anyone: its own ``url``, asking
    for the ``wanted`` events, or one of the tenant's ``endpoints``, disabled ones too."""
    event_type = EVENT_FOR_STATUS.get(JobStatus(status))
    if event_type is None:
        return False
    if url and _wants(wanted, event_type):
        return True
    return any(_wants(row.event_types, event_type) for row in endpoints)


def endpoint_disabled(session: Session, endpoint: WebhookEndpoint) -> list[OutboxMessage]:
    """Tell the tenant's other endpoints that ``endpoint`` was disabled."""
    targets = [
        target
        for target in _endpoint_targets(
            session, endpoint.tenant_id, EndpointEventType.ENDPOINT_DISABLED
        )
        if target.endpoint_id != endpoint.id
    ]
    data = {
        "id": endpoint.id,
        "url": endpoint.url,
        "disabled_reason": endpoint.disabled_reason,
        "disabled_at": _timestamp(endpoint.disabled_at or utcnow()),
    }
    if not targets:
        return []
    return record(session, endpoint.tenant_id, EndpointEventType.ENDPOINT_DISABLED, targets, data)


def ping_event(
    session: Session, endpoint: WebhookEndpoint
) -> tuple[WebhookDelivery, list[OutboxMessage]]:
    """A ``webhook.test`` event to this endpoint alone, whatever it subscribes to; return
    its delivery and outbox rows."""
    data = {"endpoint_id": endpoint.id, "message": "a test event from genq"}
    why = None if endpoint.enabled else endpoint.disabled_reason or ""
    targets = [Target(endpoint.id, endpoint.url, why)]
    (delivery_id,), rows = _record(session, endpoint.tenant_id, TEST_EVENT, targets, data, None)
    return session.get_one(WebhookDelivery, delivery_id), rows


def record(
    session: Session,
    tenant_id: str,
    event_type: str,
    targets: Sequence[Target],
    data: dict[str, Any],
    *,
    job_id: str | None = None,
) -> list[OutboxMessage]:
    """Store the event and a pending delivery per target; return their outbox rows."""
    return _record(session, tenant_id, event_type, targets, data, job_id)[1]


def _record(
    session: Session,
    tenant_id: str,
    event_type: str,
    targets: Sequence[Target],
    data: dict[str, Any],
    job_id: str | None,
) -> tuple[list[str], list[OutboxMessage]]:
    """Insert the event and its deliveries; return the deliveries' ids and outbox rows."""
    now = utcnow()
    event = {
        "id": new_id("msg"),
        "tenant_id": tenant_id,
        "type": event_type,
        "job_id": job_id,
        "body": encode_body(event_type, now, data),
        "created_at": now,
    }
    session.execute(INSERT_EVENT, event)
    deliveries = [_delivery(event, target) for target in targets]
    session.execute(INSERT_DELIVERY, deliveries)
    pending = [d for d in deliveries if d["status"] == DeliveryStatus.PENDING]
    rows = webhook_messages.stage(session, [d["id"] for d in pending if not d["endpoint_id"]])
    rows.extend(
        webhook_messages.stage_due(session, d["endpoint_id"]) for d in pending if d["endpoint_id"]
    )
    return [delivery["id"] for delivery in deliveries], rows


def _delivery(event: dict[str, Any], target: Target) -> dict[str, Any]:
    """A delivery's row: pending, or failed at once when its endpoint is disabled."""
    now, disabled = event["created_at"], target.disabled
    return {
        "id": new_id("whd"),
        "event_id": event["id"],
        "tenant_id": event["tenant_id"],
        "endpoint_id": target.endpoint_id,
        "url": target.url,
        "status": DeliveryStatus.PENDING if disabled is None else DeliveryStatus.FAILED,
        "next_attempt_at": now if disabled is None else None,
        "dispatched_at": now,
        "last_error": None if disabled is None else DISABLED + disabled,
        "created_at": now,
        "updated_at": now,
    }


def encode_body(event_type: str, at: datetime, data: dict[str, Any]) -> str:
    payload = {
        "type": event_type,
        "timestamp": _timestamp(at),
        "data": scrub_value(data, scrub_known),
    }
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False)


def _timestamp(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


def _wants(event_types: Sequence[str] | None, event_type: str) -> bool:
    if event_types is None:
        return event_type not in OPT_IN_EVENTS
    return event_type in event_types


def _endpoint_targets(session: Session, tenant_id: str, event_type: str) -> list[Target]:
    """The tenant's endpoints that subscribe to ``event_type``, disabled ones included."""
    return [
        Target(row.id, row.url, None if row.enabled else row.disabled_reason or "")
        for row in webhook_targets.endpoints(session, tenant_id)
        if _wants(row.event_types, event_type)
    ]


def _job_data(job: JobRow, settings: Settings) -> dict[str, Any]:
    """The job as the API shows it, without its input, trimmed to fit the body limit: a
    large output becomes a link to the job, then large metadata and errors are cut."""
    data = view(job).model_dump(mode="json", exclude={"input"})
    limit = settings.webhook_max_body_bytes - 512
    if _size(data) > limit and data["output"] is not None:
        data["output"] = None
        data["output_url"] = f"{settings.public_url.rstrip('/')}/v1/jobs/{job.id}"
    if _size(data) > limit and data["metadata"]:
        data["metadata"] = {}
        data["metadata_truncated"] = True
    if _size(data) > limit and data["error"]:
        data["error"]["message"] = data["error"]["message"][:ERROR_MESSAGE_MAX]
    return data


def _size(data: dict[str, Any]) -> int:
    return len(json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode())
