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

from sqlalchemy import ColumnElement, and_, update
from sqlalchemy.orm import Session

from infra import metrics
from infra.destinations import Destination, UnsafeDestinationError
from schema.tables import (
    OutboxMessage,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
    utcnow,
)
from schema.webhooks import DeliveryStatus
from store import outbox, webhook_endpoints
from store.webhook_events import DISABLED
from store.webhook_secrets import signing_secrets
from workers.runtime import Runtime
from workers.webhooks import sender
from workers.webhooks.dispatch import due_in, lease_free, stage_if_near
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
    generation: int
    body: str
    secrets: list[str]
    endpoint_failing: bool


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
        url, failing = delivery.url, False
        if delivery.endpoint_id:
            endpoint = session.get(WebhookEndpoint, delivery.endpoint_id)
            if endpoint is None:
                return
            if not endpoint.enabled:
                _give_up(runtime, delivery_id, DISABLED + (endpoint.disabled_reason or ""))
                return
            url, failing = endpoint.url, endpoint.failing_since is not None
    lease_s = runtime.settings.webhook_timeout_s + LEASE_MARGIN_S
    try:
        destination = webhook_endpoints.guard(runtime.settings, url, runtime.resolve)
    except UnsafeDestinationError as exc:
        _attempt_unsent(runtime, delivery_id, url, exc, lease_s, failing)
        return
    origin = f"{destination.scheme}://{destination.host}:{destination.port}"
    lease = runtime.webhook_gate.acquire(origin, int(lease_s * 1000))
    if not isinstance(lease, str):
        wait_s = lease / 1000 if lease > 0 else random.uniform(*BUSY_RETRY_S)
        _reschedule(runtime, delivery_id, wait_s)
        return
    try:
        claim = _claim(runtime, delivery_id, url, lease_s, failing)
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


def _ready(delivery_id: str, now: datetime) -> ColumnElement[bool]:
    """Pending, due, and nobody at it."""
    return and_(
        _pending(delivery_id),
        WebhookDelivery.next_attempt_at <= now + timedelta(seconds=1),
        lease_free(now),
    )


def _claim(
    runtime: Runtime, delivery_id: str, url: str, lease_s: float, endpoint_failing: bool
) -> Claim | None:
    """Take the delivery for one attempt to ``url`` (the endpoint's URL now, which a
    tenant may have fixed since the event), with the body and secrets to sign it."""
    now = utcnow()
    with runtime.sessions.begin() as session:
        claimed = session.execute(
            update(WebhookDelivery)
            .where(_ready(delivery_id, now))
            .values(
                attempts=WebhookDelivery.attempts + 1,
                lease_expires_at=now + timedelta(seconds=lease_s),
                url=url,
                updated_at=now,
            )
            .returning(
                WebhookDelivery.event_id,
                WebhookDelivery.tenant_id,
                WebhookDelivery.endpoint_id,
                WebhookDelivery.attempts,
                WebhookDelivery.schedule_step,
                WebhookDelivery.generation,
            )
        ).one_or_none()
        if claimed is None:
            return None
        event_id, tenant_id, endpoint_id, *counters = claimed
        body = session.get_one(WebhookEvent, event_id).body
        secrets = signing_secrets(session, tenant_id, endpoint_id)
    return Claim(
        delivery_id, event_id, tenant_id, endpoint_id, *counters, body, secrets, endpoint_failing
    )


def _send(runtime: Runtime, claim: Claim, destination: Destination) -> Verdict:
    """Sign and POST; whatever goes wrong becomes a failed attempt, never a delivery left
    claimed until its lease lapses (and then sent again, and again)."""
    try:
        return _sign_and_post(runtime, claim, destination)
    except Exception as exc:
        logger.exception("webhook %s: the attempt broke", claim.delivery_id)
        return Verdict("failed", None, None, f"internal error: {type(exc).__name__}", 0)


def _sign_and_post(runtime: Runtime, claim: Claim, destination: Destination) -> Verdict:
    if not claim.secrets:
        return Verdict("failed", None, None, "no signing secret; rotate one to create it", 0)
    headers = signed_headers(claim.secrets, claim.event_id, int(time.time()), claim.body)
    reply = sender.post(
        runtime.webhook_connections,
        destination,
        headers,
        claim.body.encode(),
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


def _record(runtime: Runtime, claim: Claim, verdict: Verdict, origin: str | None) -> None:
    """Write the attempt and the delivery's next state, if the claim still holds. If a
    resend started a new round meanwhile, only the attempt is kept, and the new round
    goes out now."""
    now = utcnow()
    rows: list[OutboxMessage] = []
    status_class = f"{verdict.status_code // 100}xx" if verdict.status_code else "none"
    metrics.WEBHOOK_ATTEMPTS.labels(verdict.outcome, status_class).inc()
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
                WebhookDelivery.generation == claim.generation,
            )
            .values(**values)
        ).rowcount
        if changed and delay_s is not None:
            row = stage_if_near(session, claim.delivery_id, delay_s)
            rows.extend([row] if row else [])
        elif not changed:
            rows.extend(_hand_over(session, claim))
        if claim.endpoint_id is not None:
            rows.extend(
                _endpoint_health(
                    runtime, session, claim.endpoint_id, claim.endpoint_failing, verdict, now
                )
            )
    if origin is not None and verdict.status_code in SLOW_DOWN_STATUSES:
        pause_s = verdict.retry_after_s or SLOW_DOWN_DEFAULT_S
        runtime.webhook_gate.pause(origin, min(pause_s, SLOW_DOWN_MAX_S))
    outbox.send(runtime.sessions, runtime.broker, rows)


def _hand_over(session: Session, claim: Claim) -> list[OutboxMessage]:
    """Free a delivery a resend moved to a new round while this attempt was under way."""
    freed = session.execute(
        update(WebhookDelivery)
        .where(_pending(claim.delivery_id), WebhookDelivery.attempts == claim.attempt)
        .values(lease_expires_at=None)
    ).rowcount
    row = stage_if_near(session, claim.delivery_id, 0) if freed else None
    return [row] if row else []


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
    runtime: Runtime,
    session: Session,
    endpoint_id: str,
    was_failing: bool,
    verdict: Verdict,
    now: datetime,
) -> list[OutboxMessage]:
    """A success ends the endpoint's failure streak (if it had one); 410, or failing for
    too long, disables it and tells the tenant."""
    if verdict.outcome == "succeeded":
        if not was_failing:
            return []
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


def _attempt_unsent(
    runtime: Runtime,
    delivery_id: str,
    url: str,
    refusal: UnsafeDestinationError,
    lease_s: float,
    endpoint_failing: bool,
) -> None:
    """Log an attempt that sent nothing. A name that does not resolve now may tomorrow,
    so it is retried; one that resolves to a non-public address fails the delivery."""
    claim = _claim(runtime, delivery_id, url, lease_s, endpoint_failing)
    if claim is None:
        return
    logger.warning("webhook %s not sent: %s", delivery_id, refusal)
    outcome = "failed" if refusal.reason == "unresolvable" else "refused"
    _record(runtime, claim, Verdict(outcome, None, None, str(refusal), 0), None)


def _give_up(runtime: Runtime, delivery_id: str, reason: str) -> None:
    """Fail a delivery without an attempt (its endpoint is disabled); a recover after the
    endpoint is enabled again sends it."""
    with runtime.sessions.begin() as session:
        session.execute(
            update(WebhookDelivery)
            .where(_pending(delivery_id), lease_free(utcnow()))
            .values(
                status=DeliveryStatus.FAILED,
                last_error=reason,
                next_attempt_at=None,
                updated_at=utcnow(),
            )
        )


def _reschedule(runtime: Runtime, delivery_id: str, delay_s: float) -> None:
    """Come back when the receiver's gate may let this delivery through (unless the
    delivery moved on meanwhile: claimed, or scheduled for later)."""
    now = utcnow()
    with runtime.sessions.begin() as session:
        changed = session.execute(
            update(WebhookDelivery)
            .where(_ready(delivery_id, now))
            .values(**due_in(delay_s), updated_at=utcnow())
        ).rowcount
        row = stage_if_near(session, delivery_id, delay_s) if changed else None
        session.flush()
    outbox.send(runtime.sessions, runtime.broker, [row] if row else [])
