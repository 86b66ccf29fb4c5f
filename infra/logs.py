"""Logging for every genq process: one JSON object per line in production, a readable line
in a terminal, each carrying the job it is about, and never a secret.

``log_context`` binds fields (job id, tenant, route, model, attempt, provider request id)
to the work the current thread is doing; every line logged meanwhile carries them, from
genq's code and from the libraries it calls. The redaction filter runs on every handler,
so a provider key quoted in an exception or a URL with a password is scrubbed before any
line is written.
"""

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Literal

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter

from infra.scrub import scrub

LogFormat = Literal["auto", "json", "console"]

# Not scrubbed: logging's own attributes, and the ids genq binds itself.
UNSCRUBBED = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "context"}

CONTEXT_FIELDS = (
    "job_id",
    "delivery_id",
    "tenant_id",
    "route",
    "model",
    "attempt",
    "provider_request_id",
)
CONSOLE_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s%(context)s"
JSON_FIELDS = "%(asctime)s %(levelname)s %(name)s %(message)s"

_context: ContextVar[dict[str, object] | None] = ContextVar("genq_log_context", default=None)


@contextmanager
def log_context(**fields: object) -> Iterator[None]:
    """Add ``fields`` to every line logged in this block (and nested ones)."""
    token = _context.set({**(_context.get() or {}), **fields})
    try:
        yield
    finally:
        _context.reset(token)


def add_log_context(**fields: object) -> bool:
    """Add fields learned midway, such as the provider's request id, to the current block;
    outside any block (code called directly, not for a message) do nothing, so nothing
    sticks to the thread. Return whether a block took them."""
    bound = _context.get()
    if bound is None:
        return False
    _context.set({**bound, **fields})
    return True


class ContextFilter(logging.Filter):
    """Put the bound job fields on each record and scrub secrets from its text."""

    def filter(self, record: logging.LogRecord) -> bool:
        bound = _context.get() or {}
        for field in CONTEXT_FIELDS:
            if field in bound and not hasattr(record, field):
                setattr(record, field, bound[field])
        shown = " ".join(f"{f}={getattr(record, f)}" for f in CONTEXT_FIELDS if hasattr(record, f))
        record.context = f" [{shown}]" if shown else ""
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # a malformed call must not fail the caller
            message = f"{record.msg} {record.args!r}"
        record.msg = scrub(message)
        record.args = ()
        for name, value in vars(record).items():
            if isinstance(value, str) and name not in UNSCRUBBED and name not in bound:
                setattr(record, name, scrub(value))
        return True


class _Scrubbing(logging.Formatter):
    """Tracebacks quote whatever the exception said, so they are scrubbed too."""

    def formatException(self, ei: Any) -> str:
        return scrub(super().formatException(ei))

    def formatStack(self, stack_info: str) -> str:
        return scrub(super().formatStack(stack_info))


class ConsoleFormatter(_Scrubbing):
    def __init__(self) -> None:
        super().__init__(CONSOLE_FORMAT)


class JsonLinesFormatter(_Scrubbing, JsonFormatter):
    def __init__(self) -> None:
        super().__init__(
            JSON_FIELDS,
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            reserved_attrs=[*RESERVED_ATTRS, "context"],
        )


# httpx logs every request it sends at INFO: a line per provider call and webhook delivery.
PER_REQUEST_LOGGERS = ("httpx",)


def formatter(log_format: LogFormat) -> logging.Formatter:
    if log_format == "auto":
        log_format = "console" if sys.stderr.isatty() else "json"
    return JsonLinesFormatter() if log_format == "json" else ConsoleFormatter()


def configure_logging(log_format: LogFormat = "auto", level: str = "INFO") -> None:
    """Format and filter the root logger's handlers (adding one on stderr if it has none,
    as Dramatiq's worker processes already do). Libraries that log each request they make
    keep to warnings unless ``level`` is DEBUG: genq logs the calls that went wrong."""
    for name in PER_REQUEST_LOGGERS:
        quiet = level.upper() != "DEBUG"
        logging.getLogger(name).setLevel(logging.WARNING if quiet else logging.NOTSET)
    root = logging.getLogger()
    if not root.handlers:
        root.addHandler(logging.StreamHandler())
    for handler in root.handlers:
        handler.setFormatter(formatter(log_format))
        if not any(isinstance(f, ContextFilter) for f in handler.filters):
            handler.addFilter(ContextFilter())
    root.setLevel(level.upper())
