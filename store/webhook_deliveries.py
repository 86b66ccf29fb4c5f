"""Reading a tenant's webhook deliveries and sending them again.

A resend keeps the event, its body and its ``webhook-id``, so a receiver that already
has it can tell; it starts a fresh round of the retry schedule.
"""

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from schema.tables import OutboxMessage, WebhookAttempt, WebhookDelivery, WebhookEvent, utcnow
from schema.webhooks import AttemptView, DeliveryStatus, DeliveryView
from store import webhook_messages
from store.cursors import after, encode_cursor


@dataclass(frozen=True)
class DeliveryFilter:
    tenant_id: str | None = None
    endpoint_id: str | None = None
    job_id: str | None = None
    status: DeliveryStatus | None = None


def get(session: Session, tenant_id: str | None, delivery_id: str) -> WebhookDelivery | None:
    """The delivery if the tenant owns it (any tenant's for an operator, None)."""
    query = select(WebhookDelivery).where(WebhookDelivery.id == delivery_id)
    if tenant_id is not None:
        query = query.where(WebhookDelivery.tenant_id == tenant_id)
    return session.scalar(query)


def page(
    session: Session, where: DeliveryFilter, *, limit: int, cursor: str | None
) -> tuple[list[WebhookDelivery], str | None]:
    """Newest first, keyset-paginated; return the deliveries and the next page's cursor."""
    query = select(WebhookDelivery)
    if where.tenant_id is not None:
        query = query.where(WebhookDelivery.tenant_id == where.tenant_id)
    if where.endpoint_id is not None:
        query = query.where(WebhookDelivery.endpoint_id == where.endpoint_id)
    if where.status is not None:
        query = query.where(WebhookDelivery.status == where.status)
    if where.job_id is not None:
        query = query.join(WebhookEvent).where(WebhookEvent.job_id == where.job_id)
    if cursor:
        query = query.where(after(cursor, WebhookDelivery.created_at, WebhookDelivery.id))
    order = (WebhookDelivery.created_at.desc(), WebhookDelivery.id.desc())
    found = list(session.scalars(query.order_by(*order).limit(limit + 1)))
    if len(found) > limit:
        last = found[limit - 1]
        return found[:limit], encode_cursor(last.created_at, last.id)
    return found, None


def view(
    session: Session, delivery: WebhookDelivery, *, with_attempts: bool = False
) -> DeliveryView:
    event = session.get_one(WebhookEvent, delivery.event_id)
    attempts = None
    if with_attempts:
        rows = session.scalars(
            select(WebhookAttempt)
            .where(WebhookAttempt.delivery_id == delivery.id)
            .order_by(WebhookAttempt.number)
        )
        attempts = [AttemptView.model_validate(row, from_attributes=True) for row in rows]
    return DeliveryView(
        id=delivery.id,
        webhook_id=event.id,
        event_type=event.type,
        job_id=event.job_id,
        endpoint_id=delivery.endpoint_id,
        url=delivery.url,
        status=DeliveryStatus(delivery.status),
        attempts=delivery.attempts,
        next_attempt_at=delivery.next_attempt_at,
        last_status_code=delivery.last_status_code,
        last_error=delivery.last_error,
        created_at=delivery.created_at,
        delivered_at=delivery.delivered_at,
        attempt_log=attempts,
    )


def resend(session: Session, delivery_ids: list[str]) -> list[OutboxMessage]:
    """Make the deliveries pending again, due now, in a new round of the schedule; return
    their outbox rows. An attempt in flight keeps its log entry and then hands over."""
    now = utcnow()
    session.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.id.in_(delivery_ids))
        .values(
            status=DeliveryStatus.PENDING,
            schedule_step=0,
            generation=WebhookDelivery.generation + 1,
            delivered_at=None,
            next_attempt_at=now,
            dispatched_at=now,
            updated_at=now,
        )
    )
    return webhook_messages.stage(session, delivery_ids)


def failed_between(
    session: Session, endpoint_id: str, since: datetime, until: datetime | None
) -> list[str]:
    """Ids of the endpoint's failed deliveries of events created in [since, until)."""
    query = select(WebhookDelivery.id).where(
        WebhookDelivery.endpoint_id == endpoint_id,
        WebhookDelivery.status == DeliveryStatus.FAILED,
        WebhookDelivery.created_at >= since,
    )
    if until is not None:
        query = query.where(WebhookDelivery.created_at < until)
    return list(session.scalars(query.order_by(WebhookDelivery.created_at)))
