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
from datetime import timedelta

from infra.destinations import Destination, UnsafeDestinationError
from schema.tables import OutboxMessage, utcnow
from store import outbox, webhook_endpoints
from workers.runtime import Runtime
from workers.webhooks import claims, sender
from workers.webhooks.claims import Claim
from workers.webhooks.dispatch import due_in, stage_if_near
from workers.webhooks.records import (
    SLOW_DOWN_DEFAULT_S,
    SLOW_DOWN_MAX_S,
    SLOW_DOWN_STATUSES,
    Verdict,
    record,
)
from workers.webhooks.signing import signed_headers

logger = logging.getLogger(__name__)

BUSY_RETRY_S = (0.2, 1.0)
LEASE_MARGIN_S = 30.0
RECORD_EVERY_S = 1.0
SLOW_ANSWER_MS = 1000


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
        record(runtime, refused, None)
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
        record(runtime, sent, origin)
        give_back(runtime, _held(train), None)
        raise
    finally:
        gate.release(origin, place)
    record(runtime, sent, origin)
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
            record(runtime, flushed, origin)
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
