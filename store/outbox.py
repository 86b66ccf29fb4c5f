"""Transactional outbox: a Dramatiq message is staged in the same transaction as the state
change that calls for it, and sent after commit.

The sender that staged a row tries to send it at once; the relay sweeps whatever is
still unsent (the broker was down, the process died) and sends it again. A row may
thus be sent twice, which is safe: every actor is idempotent on the job's state.

A row staged with a coalesce key is not sent while a message under that key waits
(``infra/coalesce.py``); it counts as sent, since the waiting message does its work.
"""

import logging
from collections.abc import Callable, Iterable
from datetime import timedelta
from typing import Any

import dramatiq
from dramatiq import Message
from sqlalchemy import bindparam, insert, select, text, update
from sqlalchemy.orm import Session, sessionmaker

from infra import coalesce
from schema.tables import OutboxMessage, utcnow
from store.ids import new_id

logger = logging.getLogger(__name__)


OUTBOX = OutboxMessage.__table__
STAGE = insert(OUTBOX).returning(OUTBOX.c.id)
STAGED = select(OUTBOX.c.id).where(OUTBOX.c.message_id == bindparam("message_id"))


def stage(
    session: Session,
    queue_name: str,
    actor_name: str,
    kwargs: dict[str, Any],
    delay_s: float = 0,
    coalesce_key: str | None = None,
) -> OutboxMessage:
    """Add a message to the outbox as part of the caller's transaction: inserted at once,
    so the row it returns (not attached to the session) already has its id."""
    values = message_values(queue_name, actor_name, kwargs, delay_s, coalesce_key)
    row_id = session.execute(STAGE, values).scalar_one()
    return OutboxMessage(id=row_id, **values)


def message_values(
    queue_name: str,
    actor_name: str,
    kwargs: dict[str, Any],
    delay_s: float = 0,
    coalesce_key: str | None = None,
) -> dict[str, Any]:
    """The columns of a new outbox row, but its id."""
    now = utcnow()
    return {
        "message_id": new_id("msg"),
        "queue_name": queue_name,
        "actor_name": actor_name,
        "kwargs": kwargs,
        "available_at": now + timedelta(seconds=delay_s),
        "created_at": now,
        "send_attempts": 0,
        "coalesce_key": coalesce_key,
    }


def _enqueue(broker: dramatiq.Broker, row: OutboxMessage) -> None:
    message = Message(
        queue_name=row.queue_name,
        actor_name=row.actor_name,
        args=(),
        kwargs=row.kwargs,
        options={},
        message_id=row.message_id,
        message_timestamp=int(row.created_at.timestamp() * 1000),
    )
    delay_ms = int((row.available_at - utcnow()).total_seconds() * 1000)
    coalesce.enqueue(broker, message, row.coalesce_key, delay_ms if delay_ms > 0 else None)


def _send_rows(session: Session, broker: dramatiq.Broker, rows: Iterable[OutboxMessage]) -> int:
    sent: list[int] = []
    for row in rows:
        try:
            _enqueue(broker, row)
        except Exception as exc:  # the broker is down or refused: the row waits for the relay
            _record_failure(session, row, exc)
            break
        sent.append(row.id)
    mark_sent(session, sent)
    return len(sent)


def _record_failure(session: Session, row: OutboxMessage, exc: Exception) -> None:
    logger.warning("outbox: could not send %s: %s", row.message_id, type(exc).__name__)
    session.execute(
        update(OUTBOX)
        .where(OUTBOX.c.id == row.id)
        .values(
            send_attempts=OUTBOX.c.send_attempts + 1,
            last_error=f"{type(exc).__name__}: {exc}"[:500],
        )
    )


def mark_sent(session: Session, ids: list[int]) -> None:
    """Mark rows sent, in the caller's transaction."""
    if not ids:
        return
    if session.get_bind().dialect.name == "postgresql":
        # Losing this mark in a crash only means one more send, which is safe; not
        # waiting for its WAL flush halves the cost of an enqueue.
        session.execute(text("SET LOCAL synchronous_commit = off"))
    session.execute(
        update(OUTBOX)
        .where(OUTBOX.c.id.in_(ids), OUTBOX.c.sent_at.is_(None))
        .values(sent_at=utcnow())
    )


def send(
    sessions: sessionmaker[Session], broker: dramatiq.Broker, rows: list[OutboxMessage]
) -> int:
    """Send rows this process just committed; return how many are done with (sent, or
    not needed while a message under their coalesce key waits)."""
    if not rows:
        return 0
    with sessions.begin() as session:
        return _send_rows(session, broker, rows)


def send_after_commit(
    sessions: sessionmaker[Session], broker: dramatiq.Broker, rows: list[OutboxMessage]
) -> None:
    """Send rows this process just committed; if that fails the relay sends them later, so
    the change that staged them stands."""
    try:
        send(sessions, broker, rows)
    except Exception:
        logger.warning("outbox: left %d messages for the relay", len(rows), exc_info=True)


def send_leaving_marks(
    sessions: sessionmaker[Session],
    broker: dramatiq.Broker,
    rows: list[OutboxMessage],
    mark_later: Callable[[list[int]], None],
) -> None:
    """Send rows this process just committed, leaving their marks to ``mark_later``, so no
    transaction follows the caller's on its way back; a failed send is recorded at once,
    and its row and those after it wait for the relay."""
    sent: list[int] = []
    for row in rows:
        try:
            _enqueue(broker, row)
        except Exception as exc:
            try:
                with sessions.begin() as session:
                    _record_failure(session, row, exc)
            except Exception:
                logger.warning("outbox: could not record a failed send", exc_info=True)
            break
        sent.append(row.id)
    mark_later(sent)


def relay_pending(
    sessions: sessionmaker[Session],
    broker: dramatiq.Broker,
    *,
    grace_s: float = 2.0,
    batch_size: int = 500,
) -> int:
    """Send unsent rows older than ``grace_s``; return how many it is done with.

    Rows are locked with SKIP LOCKED on PostgreSQL so several relays split the work.
    """
    cutoff = utcnow() - timedelta(seconds=grace_s)
    with sessions.begin() as session:
        rows = session.scalars(
            select(OutboxMessage)
            .where(OutboxMessage.sent_at.is_(None), OutboxMessage.created_at <= cutoff)
            .order_by(OutboxMessage.id)
            .limit(batch_size)
            .with_for_update(skip_locked=True)
        ).all()
        return _send_rows(session, broker, rows)
