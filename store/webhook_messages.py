"""The messages that send webhook deliveries.

A message names up to ``BATCH`` deliveries: a backlog (the sweep after a receiver's
outage, a bulk resend, a retry) so costs the queue a message per batch rather than one
per delivery, and the worker claims and records each batch together.

Fresh deliveries to an endpoint are sent by the endpoint instead: their message says
"send what is due to this endpoint", under the endpoint's coalesce key, so while one
waits or works no other is sent, and one message sends as many as came in meanwhile
(``workers/webhooks/due.py``).
"""

from collections.abc import Sequence

from sqlalchemy.orm import Session

from schema.names import DELIVER_DUE_WEBHOOKS, DELIVER_WEBHOOKS, WEBHOOKS_QUEUE
from schema.tables import OutboxMessage
from store import outbox

BATCH = 50


def stage(
    session: Session, delivery_ids: Sequence[str], delay_s: float = 0, size: int | None = None
) -> list[OutboxMessage]:
    """Stage the messages that send ``delivery_ids`` in ``delay_s``, ``size`` (a batch by
    default) a message, in the caller's transaction; return their outbox rows."""
    size = size or BATCH
    return [
        outbox.stage(
            session,
            WEBHOOKS_QUEUE,
            DELIVER_WEBHOOKS,
            {"delivery_ids": list(delivery_ids[start : start + size])},
            delay_s=delay_s,
        )
        for start in range(0, len(delivery_ids), size)
    ]


def stage_due(session: Session, endpoint_id: str, *, coalesced: bool = True) -> OutboxMessage:
    """Stage the message that sends what is due to ``endpoint_id``, in the caller's
    transaction (not sent while another waits, if ``coalesced``); return its outbox row."""
    return outbox.stage(
        session,
        WEBHOOKS_QUEUE,
        DELIVER_DUE_WEBHOOKS,
        {"endpoint_id": endpoint_id},
        coalesce_key=due_key(endpoint_id) if coalesced else None,
    )


def due_key(endpoint_id: str) -> str:
    """The coalesce key of the messages that send what is due to ``endpoint_id``."""
    return f"webhooks:due:{endpoint_id}"
