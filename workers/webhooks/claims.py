"""Taking a webhook delivery for one attempt, and letting it go unsent.

A delivery is claimed with one conditional UPDATE and a lease, like a job, so a duplicate
message does not POST twice while an attempt is under way; a worker that dies mid-POST
leaves a lease that lapses, and the dispatch sweep sends the delivery again. The same
statement returns everything the attempt needs: the endpoint's URL now (which a tenant
may have fixed since the event), the event's body, the signing secrets and the
endpoint's failure streak. A delivery whose endpoint is disabled is never claimed.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Engine, and_, bindparam, exists, func, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from schema.tables import WebhookDelivery, WebhookEndpoint, WebhookEvent, utcnow
from schema.webhooks import DeliveryStatus
from store.webhook_events import DISABLED
from store.webhook_secrets import signing_secrets_of, unpack
from workers.webhooks.dispatch import lease_free


@dataclass(frozen=True)
class Claim:
    delivery_id: str
    event_id: str
    tenant_id: str
    endpoint_id: str | None
    attempt: int
    schedule_step: int
    generation: int
    url: str
    body: str
    secrets: list[str]
    failing_since: datetime | None


def pending(delivery_id: str) -> ColumnElement[bool]:
    return and_(WebhookDelivery.id == delivery_id, WebhookDelivery.status == DeliveryStatus.PENDING)


def _claim_statement() -> Any:
    """The claim, built once: ``delivery_id``, ``now``, ``soon`` (due up to then) and
    ``lease_until`` are bound at each execution."""
    now = bindparam("now", type_=WebhookDelivery.updated_at.type)
    due = bindparam("soon", type_=WebhookDelivery.updated_at.type)
    return (
        update(WebhookDelivery)
        .where(
            WebhookDelivery.id == bindparam("delivery_id"),
            WebhookDelivery.status == DeliveryStatus.PENDING,
            WebhookDelivery.next_attempt_at <= due,
            lease_free(now),
            or_(WebhookDelivery.endpoint_id.is_(None), _enabled()),
        )
        .values(
            attempts=WebhookDelivery.attempts + 1,
            lease_expires_at=bindparam("lease_until", type_=WebhookDelivery.updated_at.type),
            url=func.coalesce(_of_endpoint(WebhookEndpoint.url), WebhookDelivery.url),
            updated_at=now,
        )
        .returning(
            WebhookDelivery.event_id,
            WebhookDelivery.tenant_id,
            WebhookDelivery.endpoint_id,
            WebhookDelivery.attempts,
            WebhookDelivery.schedule_step,
            WebhookDelivery.generation,
            WebhookDelivery.url,
            select(WebhookEvent.body)
            .where(WebhookEvent.id == WebhookDelivery.event_id)
            .scalar_subquery(),
            signing_secrets_of(WebhookDelivery.tenant_id, WebhookDelivery.endpoint_id, now),
            _of_endpoint(WebhookEndpoint.failing_since),
        )
    )


def claim(engine: Engine, delivery_id: str, lease_s: float) -> Claim | None:
    """Take the delivery for one attempt if it is due, nobody is at it and its endpoint
    (if any) is enabled; None otherwise."""
    now = utcnow()
    bound = {
        "delivery_id": delivery_id,
        "now": now,
        "soon": now + timedelta(seconds=1),
        "lease_until": now + timedelta(seconds=lease_s),
    }
    with engine.begin() as connection:
        claimed = connection.execute(CLAIM, bound).one_or_none()
    if claimed is None:
        return None
    *fields, packed, failing_since = claimed
    return Claim(delivery_id, *fields, secrets=unpack(packed), failing_since=failing_since)


def unclaim(session: Session, claim: Claim, **values: Any) -> bool:
    """Let the delivery go without an attempt, setting ``values``, if this claim still
    holds (a resend meanwhile keeps it pending and claimed: its round waits too)."""
    return bool(
        session.execute(
            update(WebhookDelivery)
            .where(pending(claim.delivery_id), WebhookDelivery.attempts == claim.attempt)
            .values(attempts=WebhookDelivery.attempts - 1, lease_expires_at=None, **values)
        ).rowcount
    )


def give_up_if_disabled(sessions: sessionmaker[Session], delivery_id: str) -> None:
    """Fail a pending delivery whose endpoint is disabled, without an attempt; a recover
    after the endpoint is enabled again sends it."""
    now = utcnow()
    reason = select(WebhookEndpoint.disabled_reason).where(
        WebhookEndpoint.id == WebhookDelivery.endpoint_id
    )
    with sessions.begin() as session:
        session.execute(
            update(WebhookDelivery)
            .where(
                pending(delivery_id),
                lease_free(now),
                WebhookDelivery.endpoint_id.is_not(None),
                ~_enabled(),
            )
            .values(
                status=DeliveryStatus.FAILED,
                last_error=DISABLED + func.coalesce(reason.scalar_subquery(), ""),
                next_attempt_at=None,
                updated_at=now,
            )
        )


def _enabled() -> ColumnElement[bool]:
    return exists().where(
        WebhookEndpoint.id == WebhookDelivery.endpoint_id, WebhookEndpoint.enabled.is_(True)
    )


def _of_endpoint(column: Any) -> Any:
    """The delivery's endpoint's ``column``, as a correlated subquery."""
    return select(column).where(WebhookEndpoint.id == WebhookDelivery.endpoint_id).scalar_subquery()


CLAIM = _claim_statement()
