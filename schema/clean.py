"""What genq can store and send, checked at the door by the API and the Python producer.

A string must be valid Unicode without NUL (PostgreSQL refuses NUL; a lone UTF-16
surrogate cannot be encoded as UTF-8, so it could be stored on SQLite but never sent).
Free-form JSON (a job's ``input`` and ``metadata``) must be plain JSON: no ``NaN`` or
``Infinity``, integers that fit in 64 bits, at most ``MAX_DEPTH`` levels of nesting. Times
fall between ``EARLIEST`` and ``LATEST``, so arithmetic on them never overflows.
"""

import math
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import AfterValidator
from pydantic_core import PydanticCustomError

from schema.errors import FieldError, Loc

MAX_DEPTH = 32
INT_MIN, INT_MAX = -(2**63), 2**63 - 1
MAX_TOKENS = 1_000_000
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(3000, 1, 1, tzinfo=UTC)


def text_problem(value: str) -> str | None:
    """Why ``value`` cannot be stored or sent, or None if it can."""
    if "\x00" in value:
        return "must not contain the NUL character (\\u0000)"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "must be valid Unicode: it holds a lone UTF-16 surrogate"
    return None


def _clean_text(value: str) -> str:
    problem = text_problem(value)
    if problem is not None:
        raise PydanticCustomError("text", problem)
    return value


CleanStr = Annotated[str, AfterValidator(_clean_text)]
"""A string that can be stored and sent: no NUL, no lone surrogate."""


def json_problems(value: Any, loc: Loc = (), depth: int = 0) -> list[FieldError]:
    """Every reason ``value`` is not plain, storable JSON, each at its own location."""
    if depth > MAX_DEPTH:
        return [FieldError(loc, f"nesting is limited to {MAX_DEPTH} levels")]
    if isinstance(value, str):
        problem = text_problem(value)
        return [FieldError(loc, problem)] if problem else []
    if value is None or isinstance(value, bool):
        return []
    if isinstance(value, int):
        if INT_MIN <= value <= INT_MAX:
            return []
        return [FieldError(loc, "integer must fit in 64 bits")]
    if isinstance(value, float):
        return [] if math.isfinite(value) else [FieldError(loc, "NaN and Infinity are not JSON")]
    if isinstance(value, dict):
        return _object_problems(value, loc, depth)
    if isinstance(value, list | tuple):
        problems: list[FieldError] = []
        for index, item in enumerate(value):
            problems += json_problems(item, (*loc, index), depth + 1)
        return problems
    return [FieldError(loc, f"{type(value).__name__} is not a JSON value")]


def _object_problems(value: dict[Any, Any], loc: Loc, depth: int) -> list[FieldError]:
    problems: list[FieldError] = []
    for key, item in value.items():
        if not isinstance(key, str):
            problems.append(FieldError(loc, "object keys must be strings"))
            continue
        problem = text_problem(key)
        if problem is not None:
            problems.append(FieldError(loc, f"a key {problem}"))
            continue
        problems += json_problems(item, (*loc, key), depth + 1)
    return problems


def _clean_json(value: Any) -> Any:
    problems = json_problems(value)
    if problems:
        first = problems[0]
        where = ".".join(map(str, first.loc))
        raise PydanticCustomError("json", f"{where}: {first.message}" if where else first.message)
    return value


CleanJson = AfterValidator(_clean_json)
"""Marks a free-form JSON field (``Annotated[dict[str, Any], CleanJson]``) as plain JSON."""


def bounded_time(value: datetime) -> datetime:
    """``value`` in UTC (taken as UTC if it names no zone), if within [EARLIEST, LATEST]."""
    aware = value if value.tzinfo else value.replace(tzinfo=UTC)
    try:
        utc = aware.astimezone(UTC)
    except OverflowError:
        utc = None
    if utc is None or not EARLIEST <= utc <= LATEST:
        raise ValueError(
            f"must be between {EARLIEST:%Y-%m-%d} and {LATEST:%Y-%m-%d} (UTC); got {value}"
        )
    return utc


def _bounded_time(value: datetime) -> datetime:
    try:
        bounded_time(value)
    except ValueError as exc:
        raise PydanticCustomError("time_range", str(exc)) from None
    return value


Moment = Annotated[datetime, AfterValidator(_bounded_time)]
"""A time between ``EARLIEST`` and ``LATEST``, kept as given (naive or aware)."""
