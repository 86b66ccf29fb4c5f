"""Dropped database connections, found when used instead of pinged at every checkout.

A pre-ping costs a round trip on every checkout to catch what rarely happens: a pooled
connection the server or a proxy closed while it sat idle. Instead, SQLAlchemy's
optimistic handling: the first statement on a dead connection fails with
``connection_invalidated`` and the pool is refreshed. ``transaction`` then runs the
transaction once more, but only when it was that first statement that failed: nothing
of the transaction reached the database, so running it again cannot do anything twice.
A connection lost later in a transaction (perhaps during its COMMIT) is the caller's to
handle, as before.
"""

import logging
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any, TypeVar

from psycopg.pq import TransactionStatus
from sqlalchemy import Connection, Engine, event
from sqlalchemy.engine import ExceptionContext
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

logger = logging.getLogger(__name__)

T = TypeVar("T")
# What a transaction runs on: an ORM session, or a bare connection where the session's
# bookkeeping would cost more than the statements (a read on every job).
Unit = TypeVar("Unit", Session, Connection)
# Set on a disconnect error raised by the first statement of a transaction.
UNUSED = "genq_dropped_unused"


def watch(engine: Engine) -> None:
    """Mark the disconnect errors of a PostgreSQL engine that ``transaction`` may retry."""
    event.listen(engine, "before_cursor_execute", _note_opening)
    event.listen(engine, "handle_error", _mark_unused)


def _note_opening(
    _conn: Any, cursor: Any, _statement: str, _parameters: Any, context: Any, _many: bool
) -> None:
    if context is not None:
        idle = cursor.connection.info.transaction_status == TransactionStatus.IDLE
        context.opens_transaction = idle


def _mark_unused(context: ExceptionContext) -> None:
    opening = getattr(context.execution_context, "opens_transaction", False)
    if context.is_disconnect and opening and context.sqlalchemy_exception is not None:
        setattr(context.sqlalchemy_exception, UNUSED, True)


def dropped_unused(exc: BaseException) -> bool:
    """Whether ``exc`` says the connection was found dead before the transaction did
    anything."""
    if not isinstance(exc, DBAPIError) or not exc.connection_invalidated:
        return False
    return bool(getattr(exc, UNUSED, False))


def transaction(begin: Callable[[], AbstractContextManager[Unit]], work: Callable[[Unit], T]) -> T:
    """``work`` in one transaction from ``begin`` (``sessions.begin`` or ``engine.begin``),
    committed; run once more on a new connection if the pooled one turned out to have been
    dropped."""
    try:
        with begin() as unit:
            return work(unit)
    except DBAPIError as exc:
        if not dropped_unused(exc):
            raise
        logger.info("a pooled database connection was dropped; running the transaction again")
    with begin() as unit:
        return work(unit)
