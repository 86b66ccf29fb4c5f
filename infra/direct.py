"""The statements of every job, run straight on psycopg (PostgreSQL).

SQLAlchemy's execution of a cached Core statement costs about twice the driver's own work
in CPU (its parameters rebuilt from the compiled form, the execution context, the
connection's events, the result object), and a worker runs three such statements per job;
the API, one to store a new job.
``Direct`` keeps what SQLAlchemy gives (the SQL it compiled, the bind and result
processing of the columns' types, its connection pool with its recycling) and runs each
statement on the pooled connection's psycopg connection, committed alone (autocommit):
one round trip, no BEGIN and no COMMIT.

Its errors are SQLAlchemy's (``DBAPIError.instance``), so callers see one error tree. A
connection found dropped is invalidated in the pool and the statement run once more on a
new one. Unlike a transaction's first statement (``infra.reconnect``), a statement
committed alone may have committed before its answer was lost, so every statement run
here must be safe to run twice: a job's claim and finish are conditional, and match
nothing the second time; a new job's insert finds the job it wrote
(``store.lifecycle.insert_reserving``).
"""

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import psycopg
from sqlalchemy import Engine
from sqlalchemy.engine.interfaces import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql import Executable
from sqlalchemy.sql.elements import ClauseElement
from sqlalchemy.types import TypeEngine

logger = logging.getLogger(__name__)

Processor = Callable[[Any], Any]


class Rows(Protocol):
    """A statement's result, as far as the job path reads it."""

    def one_or_none(self) -> Sequence[Any] | None: ...


class Executes(Protocol):
    """What runs the statements of a job's common path: a SQLAlchemy ``Connection`` or a
    ``Direct``."""

    @property
    def dialect(self) -> Dialect: ...

    def execute(self, statement: Executable, parameters: Mapping[str, Any]) -> Rows: ...


class UnsupportedStatementError(ValueError):
    """A statement whose SQL changes with its parameters (an expanding IN, a literal
    rendered at execution), which cannot be compiled once."""


@dataclass
class Compiled:
    """A statement's SQL for psycopg, its fixed parameters, and its types' processors: a
    result's come from its first execution, as they depend on the types the server says
    the columns have."""

    sql: str
    fixed: dict[str, Any]
    required: frozenset[str]
    binds: tuple[tuple[str, Processor], ...]
    types: tuple[TypeEngine[Any], ...]
    dialect: Dialect
    results: tuple[Processor | None, ...] | None = None

    def parameters(self, given: Mapping[str, Any]) -> dict[str, Any]:
        if not self.required <= given.keys():
            missing = ", ".join(sorted(self.required - given.keys()))
            raise ValueError(f"no value for the statement's parameters {missing}")
        values = self.fixed | given
        for name, process in self.binds:
            values[name] = process(values[name])
        return values

    def rows(self, cursor: psycopg.Cursor[Any]) -> list[tuple[Any, ...]]:
        if not self.types:
            return []
        if self.results is None:
            self.results = tuple(
                type_.dialect_impl(self.dialect).result_processor(self.dialect, column.type_code)
                for type_, column in zip(self.types, cursor.description, strict=True)
            )
        return [
            tuple(
                value if process is None or value is None else process(value)
                for process, value in zip(self.results, raw, strict=True)
            )
            for raw in cursor.fetchall()
        ]


@dataclass(frozen=True)
class Fetched:
    """A statement's rows, read whole (the statements here return one row or none)."""

    rows: list[tuple[Any, ...]]

    def one_or_none(self) -> tuple[Any, ...] | None:
        if len(self.rows) > 1:
            raise ValueError(f"expected at most one row, got {len(self.rows)}")
        return self.rows[0] if self.rows else None


class Direct:
    """Core statements on ``engine``'s pooled connections, each committed alone.

    ``listeners`` hear each statement's SQL before it is sent (the per-job round-trip
    tests and ``bench/per_job.py`` count them)."""

    def __init__(self, engine: Engine) -> None:
        if engine.dialect.name != "postgresql":
            raise ValueError("statements run straight on the driver only on PostgreSQL")
        self.engine = engine
        self.listeners: list[Callable[[str], None]] = []
        self._compiled: dict[int, tuple[ClauseElement, Compiled]] = {}
        self._lock = threading.Lock()

    @property
    def dialect(self) -> Dialect:
        return self.engine.dialect

    def execute(self, statement: Executable, parameters: Mapping[str, Any]) -> Fetched:
        """Run ``statement`` committed alone; on a dropped pooled connection, once more."""
        compiled = self._compiled_once(statement)
        values = compiled.parameters(parameters)
        try:
            return self._run(compiled, values)
        except DBAPIError as exc:
            if not exc.connection_invalidated:
                raise
            logger.info("a pooled database connection was dropped; running the statement again")
        return self._run(compiled, values)

    def _compiled_once(self, statement: Executable) -> Compiled:
        """``statement`` as compiled for psycopg, once per statement object."""
        known = self._compiled.get(id(statement))
        if known is not None and known[0] is statement:
            return known[1]
        compiled = _compile(statement, self.engine.dialect)  # type: ignore[arg-type]
        with self._lock:  # the statement is kept, so its id stays its own
            self._compiled[id(statement)] = (statement, compiled)  # type: ignore[assignment]
        return compiled

    def _run(self, compiled: Compiled, values: dict[str, Any]) -> Fetched:
        for listener in self.listeners:
            listener(compiled.sql)
        pooled = self.engine.raw_connection()
        connection: psycopg.Connection = pooled.driver_connection  # type: ignore[assignment]
        try:
            connection.autocommit = True
            cursor = connection.execute(compiled.sql, values)
            return Fetched(compiled.rows(cursor))
        except psycopg.Error as orig:
            dropped = self.engine.dialect.is_disconnect(orig, connection, None)
            if dropped:
                pooled.invalidate(orig)
            raise DBAPIError.instance(
                compiled.sql,
                values,
                orig,
                psycopg.Error,
                connection_invalidated=dropped,
                dialect=self.engine.dialect,
            ) from orig
        finally:
            if not connection.closed:  # the pool's other users open transactions
                connection.autocommit = False
            pooled.close()


def direct_on(engine: Engine) -> Direct | None:
    """A ``Direct`` on ``engine`` if it is PostgreSQL's; None elsewhere (SQLite), where
    every statement goes through SQLAlchemy."""
    return Direct(engine) if engine.dialect.name == "postgresql" else None


def _compile(statement: ClauseElement, dialect: Dialect) -> Compiled:
    compiled = statement.compile(dialect=dialect)
    if compiled.literal_execute_params or compiled.post_compile_params:  # type: ignore[attr-defined]
        raise UnsupportedStatementError(f"its SQL changes with its parameters: {compiled}")
    binds: dict[str, Processor] = {}
    required = set()
    for bind, name in compiled.bind_names.items():  # type: ignore[attr-defined]
        process = bind.type.dialect_impl(dialect).bind_processor(dialect)
        if process is not None:
            binds[name] = process
        if bind.required:
            required.add(name)
    types = tuple(column.type for column in statement.exported_columns)  # type: ignore[attr-defined]
    fixed = dict(compiled.construct_params(_check=False))
    return Compiled(str(compiled), fixed, frozenset(required), tuple(binds.items()), types, dialect)
