"""The messages that send webhook deliveries: one carries up to ``BATCH`` of them.

A backlog (the sweep after a receiver's outage, a bulk resend, an event for several
endpoints) so costs the queue a message per batch rather than one per delivery, and the
worker claims and records each batch together.
"""

from collections.abc import Sequence

from sqlalchemy.orm import Session

from schema.names import DELIVER_WEBHOOKS, WEBHOOKS_QUEUE
from schema.tables import OutboxMessage
from store import outbox

BATCH = 50


def stage(session: Session, delivery_ids: Sequence[str], delay_s: float = 0) -> list[OutboxMessage]:
    """Stage the messages that send ``delivery_ids`` in ``delay_s``, in the caller's
    transaction; return their outbox rows."""
    return [
        outbox.stage(
            session,
            WEBHOOKS_QUEUE,
            DELIVER_WEBHOOKS,
            {"delivery_ids": list(delivery_ids[start : start + BATCH])},
            delay_s=delay_s,
        )
        for start in range(0, len(delivery_ids), BATCH)
    ]
