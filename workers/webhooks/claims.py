"""Taking webhook deliveries for one attempt each, and letting them go unsent.

A batch of deliveries is claimed with one conditional UPDATE and a lease, like a job, so a
duplicate message does not POST twice while an attempt is under way; a worker that dies
mid-POST leaves a lease that lapses, and the dispatch sweep sends the delivery again. The
same statement returns everything each attempt needs: the endpoint's URL now (which a
tenant may have fixed since the event), the event's body, the signing secrets and the
endpoint's failure streak. A delivery whose endpoint is disabled is never claimed.

The claims of a batch share one lease, which is also how they are told apart from a later
claim: a worker whose batch outlasts it renews it, for the claims still its own.
"""

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Engine, and_, bindparam, exists, func, or_, select, update
from sqlalchemy.orm import Session, aliased, sessionmaker

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
    due_at: datetime
    secrets: list[str]
    failing_since: datetime | None
    lease_until: datetime


def pending(delivery_id: str) -> ColumnElement[bool]:
    return and_(WebhookDelivery.id == delivery_id, WebhookDelivery.status == DeliveryStatus.PENDING)


NOW = bindparam("now", type_=WebhookDelivery.updated_at.type)
SOON = bindparam("soon", type_=WebhookDelivery.updated_at.type)


def _claimable(delivery: Any = WebhookDelivery) -> ColumnElement[bool]:
    """Pending, due by ``soon`` and nobody at it."""
    return and_(
        delivery.status == DeliveryStatus.PENDING,
        delivery.next_attempt_at <= SOON,
        lease_free(NOW, delivery),
    )


def _claim_statement(which: ColumnElement[bool]) -> Any:
    """The claim of the deliveries ``which`` picks, built once: ``now``, ``soon`` and
    ``lease_until`` are bound at each execution, with what ``which`` takes."""
    return (
        update(WebhookDelivery)
        .where(
            which,
            _claimable(),
            or_(WebhookDelivery.endpoint_id.is_(None), _enabled()),
        )
        .values(
            attempts=WebhookDelivery.attempts + 1,
            lease_expires_at=bindparam("lease_until", type_=WebhookDelivery.updated_at.type),
            url=func.coalesce(_of_endpoint(WebhookEndpoint.url), WebhookDelivery.url),
            updated_at=NOW,
        )
        .returning(
            WebhookDelivery.id,
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
            WebhookDelivery.next_attempt_at,
            signing_secrets_of(WebhookDelivery.tenant_id, WebhookDelivery.endpoint_id, NOW),
            _of_endpoint(WebhookEndpoint.failing_since),
        )
    )


def claim(engine: Engine, delivery_ids: Sequence[str], lease_s: float) -> list[Claim]:
    """Take those of ``delivery_ids`` that are due, that nobody is at and whose endpoint
    (if any) is enabled, for one attempt each, in the order given."""
    claimed = _claim(engine, CLAIM, {"delivery_ids": list(delivery_ids)}, lease_s)
    return [claimed[delivery_id] for delivery_id in delivery_ids if delivery_id in claimed]


def claim_due(engine: Engine, endpoint_id: str, limit: int, lease_s: float) -> list[Claim]:
    """Take up to ``limit`` of the deliveries to ``endpoint_id`` that are due and that
    nobody is at, the longest due first, if the endpoint is enabled; others claiming
    the same endpoint at once skip those taken here rather than wait for them."""
    bound = {"b_endpoint_id": endpoint_id, "limit": limit}
    claimed = _claim(engine, CLAIM_DUE, bound, lease_s)
    return sorted(claimed.values(), key=lambda claim: (claim.due_at, claim.delivery_id))


def _claim(
    engine: Engine, statement: Any, bound: dict[str, Any], lease_s: float
) -> dict[str, Claim]:
    now = utcnow()
    lease_until = now + timedelta(seconds=lease_s)
    times = {"now": now, "soon": now + timedelta(seconds=1), "lease_until": lease_until}
    with engine.begin() as connection:
        rows = connection.execute(statement, {**bound, **times}).all()
    return {
        delivery_id: Claim(
            delivery_id,
            *fields,
            secrets=unpack(packed),
            failing_since=failing_since,
            lease_until=lease_until,
        )
        for delivery_id, *fields, packed, failing_since in rows
    }


def renew(engine: Engine, held: Sequence[Claim], lease_s: float) -> list[Claim]:
    """Extend the lease ``held`` (claims taken together) share; return those still this
    worker's, with the new lease. One another worker took after the lease lapsed, or one
    no longer pending, is left out."""
    if not held:
        return []
    lease_until = utcnow() + timedelta(seconds=lease_s)
    with engine.begin() as connection:
        kept = set(
            connection.scalars(
                update(WebhookDelivery)
                .where(
                    WebhookDelivery.id.in_([claim.delivery_id for claim in held]),
                    WebhookDelivery.status == DeliveryStatus.PENDING,
                    WebhookDelivery.lease_expires_at == held[0].lease_until,
                )
                .values(lease_expires_at=lease_until)
                .returning(WebhookDelivery.id)
            )
        )
    return [replace(claim, lease_until=lease_until) for claim in held if claim.delivery_id in kept]


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


def give_up_if_disabled(sessions: sessionmaker[Session], delivery_ids: Sequence[str]) -> None:
    """Fail those of ``delivery_ids`` that are pending for an endpoint now disabled,
    without an attempt; a recover after the endpoint is enabled again sends them."""
    _give_up_if_disabled(sessions, WebhookDelivery.id.in_(delivery_ids))


def give_up_due_if_disabled(sessions: sessionmaker[Session], endpoint_id: str) -> None:
    """Fail what is pending for ``endpoint_id`` if it is now disabled, as above."""
    _give_up_if_disabled(sessions, WebhookDelivery.endpoint_id == endpoint_id)


def _give_up_if_disabled(sessions: sessionmaker[Session], which: ColumnElement[bool]) -> None:
    now = utcnow()
    reason = select(WebhookEndpoint.disabled_reason).where(
        WebhookEndpoint.id == WebhookDelivery.endpoint_id
    )
    with sessions.begin() as session:
        session.execute(
            update(WebhookDelivery)
            .where(
                which,
                WebhookDelivery.status == DeliveryStatus.PENDING,
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


CLAIM = _claim_statement(WebhookDelivery.id.in_(bindparam("delivery_ids", expanding=True)))
_due = aliased(WebhookDelivery)
# Materialized, so the LIMIT holds: PostgreSQL may rescan a plain IN subquery, and each
# rescan skips the rows the last one locked and takes as many again.
_picked = (
    select(_due.id)
    .where(_due.endpoint_id == bindparam("b_endpoint_id"), _claimable(_due))
    .order_by(_due.next_attempt_at)
    .limit(bindparam("limit"))
    .with_for_update(skip_locked=True)
    .cte("picked")
    .prefix_with("MATERIALIZED", dialect="postgresql")
)
CLAIM_DUE = _claim_statement(WebhookDelivery.id.in_(select(_picked.c.id)))
