"""The database: engine and sessions for SQLite or PostgreSQL (psycopg 3), and migrations."""

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event, make_url, text
from sqlalchemy.engine import URL
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

import schema
from infra import reconnect
from schema.settings import Settings

MIGRATIONS_DIR = Path(schema.__file__).with_name("migrations")
# A pooled connection older than this is replaced at checkout, before the idle timeouts
# of servers and proxies close it; one closed anyway is handled by ``infra.reconnect``.
POOL_RECYCLE_S = 1800
T = TypeVar("T")

logger = logging.getLogger(__name__)


def normalize_url(url: str) -> URL:
    """Use psycopg 3 for a bare ``postgresql://`` URL."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


@dataclass(frozen=True)
class Timeouts:
    """How long a caller waits on the database before it gives up with an error.

    ``connect_s`` bounds connecting (libpq's ``connect_timeout``, also the TCP user timeout,
    so a connection to a host that vanished fails instead of waiting minutes for TCP);
    ``statement_s`` is PostgreSQL's ``statement_timeout`` and SQLite's busy timeout (a
    locked or stuck store); ``pool_s`` is the wait for a free pooled connection.
    """

    connect_s: int = 5
    statement_s: float | None = None
    pool_s: float = 30.0

    @classmethod
    def for_api(cls, settings: Settings) -> "Timeouts":
        """The producer's: short, so a store outage is a quick 503, not a hung request."""
        return cls(
            settings.api_db_connect_timeout_s,
            settings.api_db_statement_timeout_s,
            settings.api_db_pool_timeout_s,
        )


def _tune_sqlite(busy_ms: int) -> Callable[..., None]:
    def tune(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={busy_ms}")
        cursor.close()

    return tune


def make_engine(url: str, timeouts: Timeouts = Timeouts(), pool_size: int = 10) -> Engine:
    """An engine for ``url``; SQLite gets WAL and a busy timeout so processes can share it.
    Without a statement timeout, SQLite waits 30 s for a lock and PostgreSQL has no limit.
    ``pool_size`` connections are kept, and up to 20 more opened under a burst.
    PostgreSQL connections are not pinged at checkout: see ``infra.reconnect``."""
    parsed = normalize_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database:
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        busy_s = timeouts.statement_s or 30.0
        engine = create_engine(
            parsed, connect_args={"timeout": busy_s}, pool_timeout=timeouts.pool_s
        )
        event.listen(engine, "connect", _tune_sqlite(int(busy_s * 1000)))
        return engine
    options = "-c timezone=UTC"
    if timeouts.statement_s is not None:
        options += f" -c statement_timeout={int(timeouts.statement_s * 1000)}"
    engine = create_engine(
        parsed,
        pool_recycle=POOL_RECYCLE_S,
        pool_size=pool_size,
        max_overflow=20,
        pool_timeout=timeouts.pool_s,
        connect_args={
            "connect_timeout": timeouts.connect_s,
            "tcp_user_timeout": timeouts.connect_s * 1000,
            "options": options,
        },
    )
    reconnect.watch(engine)
    return engine


def violated(error: IntegrityError) -> str | None:
    """The name of the constraint ``error`` reports, where the driver says (psycopg)."""
    return getattr(getattr(error.orig, "diag", None), "constraint_name", None)


def make_sessions(engine: Engine) -> sessionmaker[Session]:
    """Sessions on ``engine`` whose objects stay readable after commit."""
    return sessionmaker(engine, expire_on_commit=False)


def guarded(session: Session, on: bool, write: Callable[[bool], T]) -> T:
    """``write(False)``; when ``on``, inside a savepoint, falling back to ``write(True)``
    (the bare version) if the full one cannot be stored."""
    if not on:
        return write(False)
    try:
        with session.begin_nested():
            return write(False)
    except Exception:
        logger.warning("could not store the full record; writing it bare", exc_info=True)
        return write(True)


def _alembic_config(engine: Engine) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["engine"] = engine
    return config


def migrate(engine: Engine) -> None:
    """Bring the database to the newest schema."""
    command.upgrade(_alembic_config(engine), "head")


def is_migrated(engine: Engine) -> bool:
    """True when the database is at the newest schema revision."""
    head = ScriptDirectory.from_config(_alembic_config(engine)).get_current_head()
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision() == head


def ping(engine: Engine) -> None:
    """Raise if the database cannot answer a trivial query."""
    with engine.connect() as connection:
        connection.execute(text("SELECT 1"))
