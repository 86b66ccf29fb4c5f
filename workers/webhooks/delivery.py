"""Delivering one webhook: claim the delivery (one statement that returns what the POST
needs), vet the URL, wait for the receiver's gate, sign, POST, and record the attempt and
what comes next in one short transaction of Core statements.

Waiting at the gate is scheduling: the claim is given back and costs no attempt.
"""

import logging
import random
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import bindparam, insert, update
from sqlalchemy.orm import Session

from infra import metrics
from infra.destinations import Destination, UnsafeDestinationError
from schema.tables import OutboxMessage, WebhookAttempt, WebhookDelivery, WebhookEndpoint, utcnow
from schema.webhooks import DeliveryStatus
from store import outbox, webhook_endpoints
from workers.runtime import Runtime
from workers.webhooks import claims, sender
from workers.webhooks.claims import Claim, pending
from workers.webhooks.dispatch import due_in, stage_if_near
from workers.webhooks.signing import signed_headers

logger = logging.getLogger(__name__)

SLOW_DOWN_STATUSES = frozenset({429, 502, 503, 504})
SLOW_DOWN_DEFAULT_S = 5.0
SLOW_DOWN_MAX_S = 3600.0
BUSY_RETRY_S = (0.2, 1.0)
LEASE_MARGIN_S = 30.0
JITTER = 0.1


ATTEMPT = insert(WebhookAttempt)
# The delivery's next state, if the claim still holds; the columns to set come with the
# parameters, so each outcome's form is compiled once and cached.
SETTLE = update(WebhookDelivery).where(
    WebhookDelivery.id == bindparam("b_id"),
    WebhookDelivery.status == DeliveryStatus.PENDING,
    WebhookDelivery.attempts == bindparam("b_attempt"),
    WebhookDelivery.generation == bindparam("b_gen"),
)


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
    lease_s = runtime.settings.webhook_timeout_s + LEASE_MARGIN_S
    claim = claims.claim(runtime.engine, delivery_id, lease_s)
    if claim is None:
        claims.give_up_if_disabled(runtime.sessions, delivery_id)
        return
    try:
        destination = webhook_endpoints.guard(runtime.settings, claim.url, runtime.resolve)
    except UnsafeDestinationError as exc:
        _record(runtime, claim, _unsent(claim, exc), None)
        return
    origin = f"{destination.scheme}://{destination.host}:{destination.port}"
    try:
        lease = runtime.webhook_gate.acquire(origin, int(lease_s * 1000))
    except Exception:
        _give_back(runtime, claim, None)
        raise
    if not isinstance(lease, str):
        _give_back(runtime, claim, lease / 1000 if lease > 0 else random.uniform(*BUSY_RETRY_S))
        return
    try:
        verdict = _send(runtime, claim, destination)
        _record(runtime, claim, verdict, origin)
    finally:
        runtime.webhook_gate.release(origin, lease)


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
        connection = session.connection()
        connection.execute(ATTEMPT, _attempt(claim, verdict, now))
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
        held = {"b_id": claim.delivery_id, "b_attempt": claim.attempt, "b_gen": claim.generation}
        changed = connection.execute(SETTLE, {**held, **values}).rowcount
        if changed and delay_s is not None:
            row = stage_if_near(session, claim.delivery_id, delay_s)
            rows.extend([row] if row else [])
        elif not changed:
            rows.extend(_hand_over(session, claim))
        if claim.endpoint_id is not None:
            rows.extend(_endpoint_health(runtime, session, claim.endpoint_id, claim, verdict, now))
    if origin is not None and verdict.status_code in SLOW_DOWN_STATUSES:
        pause_s = verdict.retry_after_s or SLOW_DOWN_DEFAULT_S
        runtime.webhook_gate.pause(origin, min(pause_s, SLOW_DOWN_MAX_S))
    outbox.send(runtime.sessions, runtime.broker, rows)


def _hand_over(session: Session, claim: Claim) -> list[OutboxMessage]:
    """Free a delivery a resend moved to a new round while this attempt was under way."""
    freed = session.execute(
        update(WebhookDelivery)
        .where(pending(claim.delivery_id), WebhookDelivery.attempts == claim.attempt)
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
    claim: Claim,
    verdict: Verdict,
    now: datetime,
) -> list[OutboxMessage]:
    """A success ends the endpoint's failure streak (if it had one); 410, or failing for
    too long, disables it and tells the tenant. The streak's start comes with the claim,
    so only a change of it is written."""
    if verdict.outcome == "succeeded":
        if claim.failing_since is not None:
            session.execute(
                update(WebhookEndpoint)
                .where(
                    WebhookEndpoint.id == endpoint_id, WebhookEndpoint.failing_since.is_not(None)
                )
                .values(failing_since=None)
            )
        return []
    if verdict.outcome == "gone":
        return webhook_endpoints.disable(session, endpoint_id, "the receiver answered 410 Gone")
    days = runtime.settings.webhook_disable_after_days
    limit = timedelta(days=days)
    since = claim.failing_since
    if since is None:
        session.execute(
            update(WebhookEndpoint)
            .where(WebhookEndpoint.id == endpoint_id, WebhookEndpoint.failing_since.is_(None))
            .values(failing_since=now)
        )
        since = now
    if now - since < limit:
        return []
    return webhook_endpoints.disable(
        session, endpoint_id, f"failing for {days:g} days", failing_before=now - limit
    )


def _attempt(claim: Claim, verdict: Verdict, now: datetime) -> dict[str, object]:
    return {
        "delivery_id": claim.delivery_id,
        "number": claim.attempt,
        "outcome": verdict.outcome,
        "status_code": verdict.status_code,
        "response_excerpt": verdict.excerpt,
        "error": verdict.error,
        "duration_ms": verdict.duration_ms,
        "started_at": now - timedelta(milliseconds=verdict.duration_ms),
    }


def _unsent(claim: Claim, refusal: UnsafeDestinationError) -> Verdict:
    """An attempt that sent nothing. A name that does not resolve now may tomorrow, so it
    is retried; one that resolves to a non-public address fails the delivery."""
    logger.warning("webhook %s not sent: %s", claim.delivery_id, refusal)
    outcome = "failed" if refusal.reason == "unresolvable" else "refused"
    return Verdict(outcome, None, None, str(refusal), 0)


def _give_back(runtime: Runtime, claim: Claim, delay_s: float | None) -> None:
    """Give the claim back unsent: come back in ``delay_s``, when the receiver's gate may
    let it through, or (None) when the message is retried."""
    with runtime.sessions.begin() as session:
        if delay_s is None:
            claims.unclaim(session, claim)
            return
        given = claims.unclaim(session, claim, **due_in(delay_s), updated_at=utcnow())
        row = stage_if_near(session, claim.delivery_id, delay_s) if given else None
        session.flush()
    outbox.send(runtime.sessions, runtime.broker, [row] if row else [])
