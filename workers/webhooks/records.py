"""Recording webhook attempts: each attempt's row, and what comes next for its delivery
(succeeded, a retry by the schedule, failed), with the endpoint's failure streak, in one
short transaction of Core statements; a delivery's next state is written only if the
claim that sent it still holds. The successes of a train are settled together, in one
statement for each answer they got.
"""

import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import bindparam, insert, tuple_, update
from sqlalchemy.orm import Session

from infra import metrics
from schema.tables import OutboxMessage, WebhookAttempt, WebhookDelivery, WebhookEndpoint, utcnow
from schema.webhooks import DeliveryStatus
from store import outbox, webhook_endpoints
from workers.runtime import Runtime
from workers.webhooks.claims import Claim, pending
from workers.webhooks.dispatch import due_in, stage_if_near

SLOW_DOWN_STATUSES = frozenset({429, 502, 503, 504})
SLOW_DOWN_DEFAULT_S = 5.0
SLOW_DOWN_MAX_S = 3600.0
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
# Deliveries that succeeded, those of ``b_held`` (id, attempt, generation) whose claim
# still holds, in one statement; it returns the ids it settled.
SETTLE_SUCCEEDED = (
    update(WebhookDelivery)
    .where(
        WebhookDelivery.status == DeliveryStatus.PENDING,
        tuple_(WebhookDelivery.id, WebhookDelivery.attempts, WebhookDelivery.generation).in_(
            bindparam("b_held", expanding=True)
        ),
    )
    .returning(WebhookDelivery.id)
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


def record(runtime: Runtime, sent: list[tuple[Claim, Verdict]], origin: str | None) -> None:
    """Write the attempts and each delivery's next state, if its claim still holds. If a
    resend started a new round meanwhile, only the attempt is kept, and the new round
    goes out now."""
    if not sent:
        return
    now = utcnow()
    rows: list[OutboxMessage] = []
    for _, verdict in sent:
        status_class = f"{verdict.status_code // 100}xx" if verdict.status_code else "none"
        metrics.WEBHOOK_ATTEMPTS.labels(verdict.outcome, status_class).inc()
    with runtime.sessions.begin() as session:
        connection = session.connection()
        connection.execute(ATTEMPT, [_attempt(claim, verdict, now) for claim, verdict in sent])
        rows.extend(_settle_succeeded(session, sent, now))
        answered: set[str] = set()  # endpoints whose streak a success here already ended
        for claim, verdict in sent:
            if verdict.outcome != "succeeded":
                rows.extend(_settle(runtime, session, claim, verdict, now))
            endpoint_id, success = claim.endpoint_id, verdict.outcome == "succeeded"
            if endpoint_id is None or (success and endpoint_id in answered):
                continue
            rows.extend(_endpoint_health(runtime, session, endpoint_id, claim, verdict, now))
            if success:
                answered.add(endpoint_id)
    for _, verdict in sent:
        if origin is not None and verdict.status_code in SLOW_DOWN_STATUSES:
            pause_s = verdict.retry_after_s or SLOW_DOWN_DEFAULT_S
            runtime.webhook_gate.pause(origin, min(pause_s, SLOW_DOWN_MAX_S))
    outbox.send(runtime.sessions, runtime.broker, rows)


def _settle_succeeded(
    session: Session, sent: list[tuple[Claim, Verdict]], now: datetime
) -> list[OutboxMessage]:
    """Mark the deliveries that succeeded, in one statement for each answer they got;
    hand over those a resend moved to a new round meanwhile."""
    by_answer: dict[tuple[int | None, str | None], list[Claim]] = {}
    for claim, verdict in sent:
        if verdict.outcome == "succeeded":
            by_answer.setdefault((verdict.status_code, verdict.error), []).append(claim)
    rows: list[OutboxMessage] = []
    for (status_code, error), succeeded in by_answer.items():
        values = _answered(status_code, error, now) | {
            "status": DeliveryStatus.SUCCEEDED,
            "delivered_at": now,
            "next_attempt_at": None,
        }
        held = [(claim.delivery_id, claim.attempt, claim.generation) for claim in succeeded]
        settling = session.connection().execute(SETTLE_SUCCEEDED, {"b_held": held, **values})
        settled = set(settling.scalars())
        for claim in succeeded:
            if claim.delivery_id not in settled:
                rows.extend(_hand_over(session, claim))
    return rows


def _answered(status_code: int | None, error: str | None, now: datetime) -> dict[str, object]:
    """What every attempt's end writes to its delivery."""
    return {
        "last_status_code": status_code,
        "last_error": error,
        "lease_expires_at": None,
        "updated_at": now,
    }


def _settle(
    runtime: Runtime, session: Session, claim: Claim, verdict: Verdict, now: datetime
) -> list[OutboxMessage]:
    """The next state of a delivery whose attempt did not succeed; the message of a near
    retry."""
    values = _answered(verdict.status_code, verdict.error, now)
    delay_s = None
    if verdict.outcome == "failed" and (delay_s := _retry_in(runtime, claim, verdict)):
        values.update(schedule_step=claim.schedule_step + 1, **due_in(delay_s))
    else:
        values.update(status=DeliveryStatus.FAILED, next_attempt_at=None)
    held = {"b_id": claim.delivery_id, "b_attempt": claim.attempt, "b_gen": claim.generation}
    changed = session.connection().execute(SETTLE, {**held, **values}).rowcount
    if not changed:
        return _hand_over(session, claim)
    return stage_if_near(session, [claim.delivery_id], delay_s) if delay_s is not None else []


def _hand_over(session: Session, claim: Claim) -> list[OutboxMessage]:
    """Free a delivery a resend moved to a new round while this attempt was under way."""
    freed = session.execute(
        update(WebhookDelivery)
        .where(pending(claim.delivery_id), WebhookDelivery.attempts == claim.attempt)
        .values(lease_expires_at=None)
    ).rowcount
    return stage_if_near(session, [claim.delivery_id], 0) if freed else []


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
