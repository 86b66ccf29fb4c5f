"""Sending what is due to one endpoint: the message fresh deliveries share.

Each event for an endpoint stages the endpoint's message under its coalesce key
(``store/webhook_messages.py``), so while one is waiting or at work, no other is sent.
A message claims up to a batch and sends it as a train. A full batch may have more
behind it, so first it sends one more message, without the key, which takes those on
another thread and inherits the rest of the work. A batch short of full was all there
was when it was claimed; so the message clears the mark (the next event sends a new
message) and claims once more, which takes whatever came in while the mark was set.
"""

from infra import coalesce
from store import outbox, webhook_messages
from workers.runtime import Runtime
from workers.webhooks import claims, delivery


def deliver_due(runtime: Runtime, endpoint_id: str) -> None:
    """Make one attempt at each delivery to ``endpoint_id`` that is due and nobody is at."""
    lease_s = delivery.lease_for(runtime)
    batch = webhook_messages.BATCH
    cleared = sent_any = False
    while True:
        claimed = claims.claim_due(runtime.engine, endpoint_id, batch, lease_s)
        full = len(claimed) == batch
        if full:
            _hand_on(runtime, endpoint_id, claimed)
        if claimed:
            delivery.send(runtime, claimed, lease_s)
            sent_any = True
        if full or cleared:
            break
        coalesce.taken(runtime.broker, webhook_messages.due_key(endpoint_id))
        cleared = True
    if not sent_any:
        claims.give_up_due_if_disabled(runtime.sessions, endpoint_id)


def _hand_on(runtime: Runtime, endpoint_id: str, claimed: list[claims.Claim]) -> None:
    """Send the message that takes on what is due after ``claimed``; if it cannot be
    staged, give ``claimed`` back for the retry of this one."""
    try:
        with runtime.sessions.begin() as session:
            row = webhook_messages.stage_due(session, endpoint_id, coalesced=False)
    except Exception:
        delivery.give_back(runtime, claimed, None)
        raise
    outbox.send_after_commit(runtime.sessions, runtime.broker, [row])
