"""Opaque keyset-pagination cursors: the sort time and id of the last row of a page."""

import base64
import binascii
import json
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, or_

from schema.clean import bounded_time, text_problem
from schema.errors import RequestError


class InvalidCursorError(RequestError, ValueError):
    """A pagination cursor that genq did not issue."""


def encode_cursor(moment: datetime, row_id: str) -> str:
    raw = json.dumps([moment.isoformat(), row_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """The time and id a cursor holds; ``InvalidCursorError`` for anything genq did not
    issue, including a time out of range or an id that could not be stored."""
    try:
        raw = base64.urlsafe_b64decode(cursor.encode("ascii") + b"=" * (-len(cursor) % 4))
        moment, row_id = json.loads(raw)
        if not isinstance(moment, str) or not isinstance(row_id, str) or text_problem(row_id):
            raise TypeError("not a cursor")
        parsed = datetime.fromisoformat(moment)
        bounded_time(parsed)
        return parsed, row_id
    except (binascii.Error, ValueError, TypeError, RecursionError) as exc:
        raise InvalidCursorError("cursor is not one this API returned") from exc


def after(cursor: str, moment: Any, row_id: Any) -> ColumnElement[bool]:
    """Rows after the cursor in newest-first order of the ``moment`` and ``row_id`` columns."""
    last_moment, last_id = decode_cursor(cursor)
    return or_(moment < last_moment, and_(moment == last_moment, row_id < last_id))
