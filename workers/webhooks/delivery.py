"""Delivering one webhook: vet the URL, wait for the receiver's gate, claim the delivery,
sign, POST, and record the attempt and what comes next in one transaction.

A delivery is claimed with a conditional UPDATE and a lease, like a job, so a duplicate
message does not POST twice while an attempt is under way; a worker that dies mid-POST
leaves a lease that lapses, and the dispatch sweep sends the delivery again. Waiting at
the gate is scheduling: it costs no attempt.
"""

import logging
import random
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, and_, or_, update
from sqlalchemy.orm import Session

from producers import outbox, webhook_endpoints
from producers.webhook_secrets import signing_secrets
from schema.destinations import Destination, UnsafeDestinationError
from schema.tables import (
    OutboxMessage,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
    utcnow,
)
from schema.webhooks import DeliveryStatus
from workers.runtime import Runtime
from workers.webhooks import sender
from workers.webhooks.dispatch import due_in, stage_if_near
from workers.webhooks.signing import signed_headers

logger = logging.getLogger(__name__)

SLOW_DOWN_STATUSES = frozenset({429, 502, 503, 504})
SLOW_DOWN_DEFAULT_S = 5.0
SLOW_DOWN_MAX_S = 3600.0
BUSY_RETRY_S = (0.2, 1.0)
LEASE_MARGIN_S = 30.0
JITTER = 0.1


@dataclass(frozen=True)
class Claim:
    delivery_id: str
    event_id: str
    tenant_id: str
    endpoint_id: str | None
    attempt: int
    schedule_step: int


@dataclass(frozen=True)
class Verdict:
    """How an attempt ended, for the attempt log and the delivery."""

    outcome: str
    status_code: int | None
    excerpt: str | None
    error: str | None
    duration_ms: int
    retry_after_s: float | None = None


def deliver(runtime: Runtime, delivery_id: str) -> None:
    """Make one attempt at ``delivery_id`` if it is due and nobody else is at it."""
    with runtime.sessions() as session:
        delivery = session.get(WebhookDelivery, delivery_id)
        if delivery is None or not _due(delivery):
            return
        endpoint = (
            session.get(WebhookEndpoint, delivery.endpoint_id) if delivery.endpoint_id else None
        )
        if endpoint is not None and not endpoint.enabled:
            _give_up(runtime, delivery_id, f"endpoint disabled: {endpoint.disabled_reason}")
            return
    try:
        destination = webhook_endpoints.guard(runtime.settings, delivery.url, runtime.resolve)
    except UnsafeDestinationError as exc:
        _attempt_refused(runtime, delivery_id, str(exc))
        return
    origin = f"{destination.scheme}://{destination.host}:{destination.port}"
    lease_s = runtime.settings.webhook_timeout_s + LEASE_MARGIN_S
    lease = runtime.webhook_gate.acquire(origin, int(lease_s * 1000))
    if not isinstance(lease, str):
        wait_s = lease / 1000 if lease > 0 else random.uniform(*BUSY_RETRY_S)
        _reschedule(runtime, delivery_id, wait_s)
        return
    try:
        claim = _claim(runtime, delivery_id, lease_s)
        if claim is not None:
            verdict = _send(runtime, claim, destination)
            _record(runtime, claim, verdict, origin)
    finally:
        runtime.webhook_gate.release(origin, lease)


def _due(delivery: WebhookDelivery) -> bool:
    now = utcnow()
    return (
        delivery.status == DeliveryStatus.PENDING
        and delivery.next_attempt_at is not None
        and delivery.next_attempt_at <= now + timedelta(seconds=1)
        and (delivery.lease_expires_at is None or delivery.lease_expires_at < now)
    )


def _pending(delivery_id: str) -> ColumnElement[bool]:
    return and_(WebhookDelivery.id == delivery_id, WebhookDelivery.status == DeliveryStatus.PENDING)


def _claim(runtime: Runtime, delivery_id: str, lease_s: float) -> Claim | None:
    now = utcnow()
    with runtime.sessions.begin() as session:
        claimed = session.execute(
            update(WebhookDelivery)
            .where(
                _pending(delivery_id),
                WebhookDelivery.next_attempt_at <= now + timedelta(seconds=1),
                or_(
                    WebhookDelivery.lease_expires_at.is_(None),
                    WebhookDelivery.lease_expires_at < now,
                ),
            )
            .values(
                attempts=WebhookDelivery.attempts + 1,
                lease_expires_at=now + timedelta(seconds=lease_s),
                updated_at=now,
            )
            .returning(
                WebhookDelivery.event_id,
                WebhookDelivery.tenant_id,
                WebhookDelivery.endpoint_id,
                WebhookDelivery.attempts,
                WebhookDelivery.schedule_step,
            )
        ).one_or_none()
    return Claim(delivery_id, *claimed) if claimed else None


def _send(runtime: Runtime, claim: Claim, destination: Destination) -> Verdict:
    with runtime.sessions() as session:
        body = session.get_one(WebhookEvent, claim.event_id).body
        secrets = signing_secrets(session, claim.tenant_id, claim.endpoint_id)
    if not secrets:
        return Verdict("failed", None, None, "no signing secret; rotate one to create it", 0)
    headers = signed_headers(secrets, claim.event_id, int(time.time()), body)
    reply = sender.post(
        runtime.webhook_client,
        destination,
        headers,
        body.encode(),
        runtime.settings.webhook_timeout_s,
    )
    if reply.ok:
        outcome = "succeeded"
    elif reply.status_code == 410:
        outcome = "gone"
    else:
        outcome = "failed"
    error = reply.error
    if error is None and not reply.ok:
        error = f"the receiver answered {reply.status_code}"
    return Verdict(
        outcome, reply.status_code, reply.excerpt, error, reply.duration_ms, reply.retry_after_s
    )


def _record(runtime: Runtime, claim: Claim, verdict: Verdict, origin: str) -> None:
    """Write the attempt and the delivery's next state, if the claim still holds."""
    now = utcnow()
    rows: list[OutboxMessage] = []
    with runtime.sessions.begin() as session:
        session.add(_attempt_row(claim.delivery_id, claim.attempt, verdict, now))
        values: dict[str, object] = {
            "last_status_code": verdict.status_code,
            "last_error": verdict.error,
            "lease_expires_at": None,
            "updated_at": now,
        }
        delay_s = None
        if verdict.outcome == "succeeded":
            values.update(status=DeliveryStatus.SUCCEEDED, delivered_at=now, next_attempt_at=None)
        elif verdict.outcome == "failed" and (delay_s := _retry_in(runtime, claim, verdict)):
            values.update(schedule_step=claim.schedule_step + 1, **due_in(delay_s))
        else:
            values.update(status=DeliveryStatus.FAILED, next_attempt_at=None)
        changed = session.execute(
            update(WebhookDelivery)
            .where(
                _pending(claim.delivery_id),
                WebhookDelivery.attempts == claim.attempt,
            )
            .values(**values)
        ).rowcount
        if changed and delay_s is not None:
            row = stage_if_near(session, claim.delivery_id, delay_s)
            rows.extend([row] if row else [])
        if claim.endpoint_id is not None:
            rows.extend(_endpoint_health(runtime, session, claim.endpoint_id, verdict, now))
    if verdict.status_code in SLOW_DOWN_STATUSES or verdict.retry_after_s:
        pause_s = verdict.retry_after_s or SLOW_DOWN_DEFAULT_S
        runtime.webhook_gate.pause(origin, min(pause_s, SLOW_DOWN_MAX_S))
    outbox.send(runtime.sessions, runtime.broker, rows)


def _retry_in(runtime: Runtime, claim: Claim, verdict: Verdict) -> float | None:
    """Seconds until the next attempt by the schedule (with jitter, and no sooner than the
    receiver asked), or None when the schedule is spent."""
    schedule = runtime.settings.webhook_retry_schedule_s
    step = claim.schedule_step + 1
    if step >= len(schedule):
        return None
    delay_s = schedule[step] * random.uniform(1 - JITTER, 1 + JITTER)
    asked_s = min(verdict.retry_after_s or 0.0, SLOW_DOWN_MAX_S)
    return max(delay_s, asked_s, 0.001)


def _endpoint_health(
    runtime: Runtime, session: Session, endpoint_id: str, verdict: Verdict, now: datetime
) -> list[OutboxMessage]:
    """A success ends the endpoint's failure streak; 410, or failing for too long, disables
    it and tells the tenant."""
    if verdict.outcome == "succeeded":
        session.execute(
            update(WebhookEndpoint)
            .where(WebhookEndpoint.id == endpoint_id, WebhookEndpoint.failing_since.is_not(None))
            .values(failing_since=None)
        )
        return []
    if verdict.outcome == "gone":
        return webhook_endpoints.disable(session, endpoint_id, "the receiver answered 410 Gone")
    session.execute(
        update(WebhookEndpoint)
        .where(WebhookEndpoint.id == endpoint_id, WebhookEndpoint.failing_since.is_(None))
        .values(failing_since=now)
    )
    failing_since = session.get_one(
        WebhookEndpoint, endpoint_id, populate_existing=True
    ).failing_since
    limit = timedelta(days=runtime.settings.webhook_disable_after_days)
    if failing_since is not None and now - failing_since >= limit:
        days = runtime.settings.webhook_disable_after_days
        return webhook_endpoints.disable(session, endpoint_id, f"failing for {days:g} days")
    return []


def _attempt_row(delivery_id: str, number: int, verdict: Verdict, now: datetime) -> WebhookAttempt:
    return WebhookAttempt(
        delivery_id=delivery_id,
        number=number,
        outcome=verdict.outcome,
        status_code=verdict.status_code,
        response_excerpt=verdict.excerpt,
        error=verdict.error,
        duration_ms=verdict.duration_ms,
        started_at=now - timedelta(milliseconds=verdict.duration_ms),
    )


def _attempt_refused(runtime: Runtime, delivery_id: str, reason: str) -> None:
    """The URL fails the SSRF guard now (its name may resolve elsewhere than at creation):
    log an attempt that sent nothing, and fail the delivery."""
    claim = _claim(runtime, delivery_id, LEASE_MARGIN_S)
    if claim is None:
        return
    logger.warning("webhook %s refused: %s", delivery_id, reason)
    with runtime.sessions.begin() as session:
        session.add(
            _attempt_row(
                delivery_id, claim.attempt, Verdict("refused", None, None, reason, 0), utcnow()
            )
        )
        _finish(session, delivery_id, reason)


def _give_up(runtime: Runtime, delivery_id: str, reason: str) -> None:
    with runtime.sessions.begin() as session:
        _finish(session, delivery_id, reason)


def _finish(session: Session, delivery_id: str, reason: str) -> None:
    session.execute(
        update(WebhookDelivery)
        .where(_pending(delivery_id))
        .values(
            status=DeliveryStatus.FAILED,
            last_error=reason,
            next_attempt_at=None,
            lease_expires_at=None,
            updated_at=utcnow(),
        )
    )


def _reschedule(runtime: Runtime, delivery_id: str, delay_s: float) -> None:
    """Come back when the receiver's gate may let this delivery through."""
    with runtime.sessions.begin() as session:
        changed = session.execute(
            update(WebhookDelivery)
            .where(
                _pending(delivery_id),
            )
            .values(**due_in(delay_s), updated_at=utcnow())
        ).rowcount
        row = stage_if_near(session, delivery_id, delay_s) if changed else None
        session.flush()
    outbox.send(runtime.sessions, runtime.broker, [row] if row else [])
