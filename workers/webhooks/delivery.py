"""Delivering webhooks: claim a batch of deliveries (one statement that returns what the
POSTs need), vet each URL, and send each receiver's share as a train: one place at the
receiver's gate, then one signed POST after another while it answers 2xx. The attempts
and what comes next are recorded together, in one short transaction of Core statements,
when the train ends and at least every ``RECORD_EVERY_S`` along it.

A train stops at the first attempt that is not a success: the receiver is struggling,
slow to answer or gone, so the rest of its share is given back unsent, to come back after
the receiver's pause (or soon), and costs no attempt. So does a share that has to wait at
the gate. A train that outlasts its lease renews it, and the gate's place with it. A
train stops too at a success that took ``SLOW_ANSWER_MS`` or more: a receiver that slow
gets the rest at once, a message each, in parallel up to its gate's limit.
"""

import logging
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import bindparam, insert, tuple_, update
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
RECORD_EVERY_S = 1.0
SLOW_ANSWER_MS = 1000
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


Train = list[tuple[Claim, Destination]]


def lease_for(runtime: Runtime) -> float:
    """Seconds a claim holds its deliveries: a POST's timeout and a margin."""
    return runtime.settings.webhook_timeout_s + LEASE_MARGIN_S


def deliver(runtime: Runtime, delivery_ids: Sequence[str]) -> None:
    """Make one attempt at each of ``delivery_ids`` that is due and nobody else is at."""
    lease_s = lease_for(runtime)
    claimed = claims.claim(runtime.engine, delivery_ids, lease_s)
    if len(claimed) < len(delivery_ids):
        taken = {claim.delivery_id for claim in claimed}
        missed = [delivery_id for delivery_id in delivery_ids if delivery_id not in taken]
        claims.give_up_if_disabled(runtime.sessions, missed)
    send(runtime, claimed, lease_s)


def send(runtime: Runtime, claimed: list[Claim], lease_s: float) -> None:
    """Vet the URL of each of ``claimed`` and send each receiver's share as a train."""
    trains: dict[str, Train] = {}
    refused: list[tuple[Claim, Verdict]] = []
    for claim in claimed:
        try:
            destination = webhook_endpoints.guard(runtime.settings, claim.url, runtime.resolve)
        except UnsafeDestinationError as exc:
            refused.append((claim, _unsent(claim, exc)))
            continue
        origin = f"{destination.scheme}://{destination.host}:{destination.port}"
        trains.setdefault(origin, []).append((claim, destination))
    waiting = list(trains.items())
    try:
        _record(runtime, refused, None)
        while waiting:
            origin, train = waiting.pop(0)
            _run(runtime, origin, train, lease_s)
    except Exception:
        give_back(runtime, [claim for _, train in waiting for claim, _ in train], None)
        raise


def _run(runtime: Runtime, origin: str, train: Train, lease_s: float) -> None:
    """Send ``train`` to ``origin`` one delivery after another from one place at its gate,
    and record what was sent; whatever the train could not send is given back."""
    gate = runtime.webhook_gate
    try:
        place = gate.acquire(origin, int(lease_s * 1000))
    except Exception:
        give_back(runtime, _held(train), None)
        raise
    if not isinstance(place, str):
        delay_s = place / 1000 if place > 0 else random.uniform(*BUSY_RETRY_S)
        give_back(runtime, _held(train), delay_s)
        return
    sent: list[tuple[Claim, Verdict]] = []
    try:
        waited_ms = _drive(runtime, origin, train, sent, place, lease_s)
    except Exception:
        _record(runtime, sent, origin)
        give_back(runtime, _held(train), None)
        raise
    finally:
        gate.release(origin, place)
    _record(runtime, sent, origin)
    if train:
        _stop(runtime, _held(train), sent[-1][1] if sent else None, waited_ms)


def _drive(
    runtime: Runtime,
    origin: str,
    train: Train,
    sent: list[tuple[Claim, Verdict]],
    place: str,
    lease_s: float,
) -> int | None:
    """POST from the head of ``train`` into ``sent`` while the receiver answers 2xx fast,
    recording along the way and renewing the lease when it runs low; return how many ms
    the gate asked to wait if it stopped the train at a renewal."""
    renew_below = timedelta(seconds=runtime.settings.webhook_timeout_s + LEASE_MARGIN_S / 2)
    recorded_at = time.monotonic()
    while train:
        if train[0][0].lease_until - utcnow() < renew_below:
            renewed = runtime.webhook_gate.acquire(origin, int(lease_s * 1000), place)
            if not isinstance(renewed, str):
                return renewed
            destinations = {claim.delivery_id: to for claim, to in train}
            kept = claims.renew(runtime.engine, _held(train), lease_s)
            train[:] = [(claim, destinations[claim.delivery_id]) for claim in kept]
            continue
        claim, destination = train.pop(0)
        verdict = _send(runtime, claim, destination)
        sent.append((claim, verdict))
        if verdict.outcome != "succeeded" or verdict.duration_ms >= SLOW_ANSWER_MS:
            return None
        if time.monotonic() - recorded_at >= RECORD_EVERY_S:
            flushed = sent[:]
            sent.clear()  # written once: a failed write is not tried again with the rest
            _record(runtime, flushed, origin)
            recorded_at = time.monotonic()
    return None


def _stop(runtime: Runtime, held: list[Claim], last: Verdict | None, waited_ms: int | None) -> None:
    """Give back what a stopped train did not send: after the receiver's pause, or soon;
    a receiver gone (410) disabled its endpoint, which fails the rest. A receiver slow to
    answer gets the rest now, a message each, so they go in parallel (up to its gate's
    limit) rather than one after another."""
    if waited_ms is None and last is not None and last.outcome == "succeeded":
        give_back(runtime, held, 0, spread=True)
        return
    if waited_ms is not None and waited_ms > 0:
        delay_s = waited_ms / 1000
    elif last is not None and last.status_code in SLOW_DOWN_STATUSES:
        delay_s = min(last.retry_after_s or SLOW_DOWN_DEFAULT_S, SLOW_DOWN_MAX_S)
    else:
        delay_s = random.uniform(*BUSY_RETRY_S)
    give_back(runtime, held, delay_s)
    if last is not None and last.outcome == "gone":
        claims.give_up_if_disabled(runtime.sessions, [claim.delivery_id for claim in held])


def _held(train: Train) -> list[Claim]:
    return [claim for claim, _ in train]


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


def _record(runtime: Runtime, sent: list[tuple[Claim, Verdict]], origin: str | None) -> None:
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


def _unsent(claim: Claim, refusal: UnsafeDestinationError) -> Verdict:
    """An attempt that sent nothing. A name that does not resolve now may tomorrow, so it
    is retried; one that resolves to a non-public address fails the delivery."""
    logger.warning("webhook %s not sent: %s", claim.delivery_id, refusal)
    outcome = "failed" if refusal.reason == "unresolvable" else "refused"
    return Verdict(outcome, None, None, str(refusal), 0)


def give_back(
    runtime: Runtime, held: list[Claim], delay_s: float | None, *, spread: bool = False
) -> None:
    """Give the claims back unsent: to come back in ``delay_s`` (in a message each, if
    ``spread``), when the receiver's gate may let them through, or (None) when the
    message is retried."""
    if not held:
        return
    rows: list[OutboxMessage] = []
    with runtime.sessions.begin() as session:
        if delay_s is None:
            for claim in held:
                claims.unclaim(session, claim)
            return
        due = due_in(delay_s)
        given = [
            claim.delivery_id
            for claim in held
            if claims.unclaim(session, claim, **due, updated_at=utcnow())
        ]
        rows = stage_if_near(session, given, delay_s, 1 if spread else None) if given else []
    outbox.send(runtime.sessions, runtime.broker, rows)
