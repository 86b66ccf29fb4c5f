"""When a delivery's next attempt happens, and the sweep that sends what is due.

A near retry (up to a minute) gets a delayed Dramatiq message at once. A far one (the
schedule reaches 24 h) is left to the scheduler's sweep, so no message sits in a
worker's memory for hours; the same sweep re-sends a delivery whose message was lost,
in messages of a batch each, so a backlog after an outage drains at a batch's cost.
"""

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import dramatiq
from sqlalchemy import ColumnElement, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from schema.tables import OutboxMessage, WebhookDelivery, utcnow
from schema.webhooks import DeliveryStatus
from store import outbox, webhook_messages

DIRECT_DELAY_MAX_S = 60.0
REDISPATCH_AFTER_S = 60.0


def due_in(delay_s: float) -> dict[str, Any]:
    """Column values for a next attempt ``delay_s`` from now; a near one counts as
    dispatched from then, since its message goes out with it."""
    due = utcnow() + timedelta(seconds=delay_s)
    return {"next_attempt_at": due, "dispatched_at": due if delay_s <= DIRECT_DELAY_MAX_S else None}


def lease_free(now: Any, delivery: Any = WebhookDelivery) -> ColumnElement[bool]:
    """No attempt is under way: never claimed, or its worker's lease lapsed."""
    return or_(delivery.lease_expires_at.is_(None), delivery.lease_expires_at < now)


def stage_if_near(
    session: Session, delivery_ids: Sequence[str], delay_s: float, size: int | None = None
) -> list[OutboxMessage]:
    if delay_s > DIRECT_DELAY_MAX_S:
        return []
    return webhook_messages.stage(session, delivery_ids, delay_s, size)


def dispatch_due(
    sessions: sessionmaker[Session],
    broker: dramatiq.Broker,
    *,
    redispatch_after_s: float = REDISPATCH_AFTER_S,
    batch_size: int = 500,
) -> int:
    """Send deliveries that are due and not under way: far retries whose time came, and
    near ones whose message went missing; return how many."""
    now = utcnow()
    with sessions.begin() as session:
        due = session.scalars(
            select(WebhookDelivery.id)
            .where(
                WebhookDelivery.status == DeliveryStatus.PENDING,
                WebhookDelivery.next_attempt_at <= now,
                or_(
                    WebhookDelivery.dispatched_at.is_(None),
                    WebhookDelivery.dispatched_at < now - timedelta(seconds=redispatch_after_s),
                ),
                lease_free(now),
            )
            .order_by(WebhookDelivery.next_attempt_at)
            .limit(batch_size)
            .with_for_update(skip_locked=True)
        ).all()
        if not due:
            return 0
        session.execute(
            update(WebhookDelivery).where(WebhookDelivery.id.in_(due)).values(dispatched_at=now)
        )
        rows = webhook_messages.stage(session, due)
    outbox.send(sessions, broker, rows)
    return len(due)
