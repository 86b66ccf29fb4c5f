"""Sending what is due to one endpoint: the message fresh deliveries share.

Each event for an endpoint stages the endpoint's message under its coalesce key
(``store/webhook_messages.py``), so while one waits, no other is sent. The mark is
cleared before the claim, so the claim sees every delivery whose own message was not
sent because this one waited. A claim takes up to a batch; a full batch may have more
behind it, so one more message goes out first, to send those from another thread while
this one sends its train.
"""

from infra import coalesce
from store import outbox, webhook_messages
from workers.runtime import Runtime
from workers.webhooks import claims, delivery


def deliver_due(runtime: Runtime, endpoint_id: str) -> None:
    """Make one attempt at each delivery to ``endpoint_id`` that is due and nobody is at."""
    coalesce.taken(runtime.broker, webhook_messages.due_key(endpoint_id))
    lease_s = delivery.lease_for(runtime)
    batch = webhook_messages.BATCH
    claimed = claims.claim_due(runtime.engine, endpoint_id, batch, lease_s)
    if not claimed:
        claims.give_up_due_if_disabled(runtime.sessions, endpoint_id)
        return
    if len(claimed) == batch:
        try:
            with runtime.sessions.begin() as session:
                row = webhook_messages.stage_due(session, endpoint_id)
        except Exception:
            delivery.give_back(runtime, claimed, None)
            raise
        outbox.send_after_commit(runtime.sessions, runtime.broker, [row])
    delivery.send(runtime, claimed, lease_s)
