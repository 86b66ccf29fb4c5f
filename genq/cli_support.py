"""What the operator commands share: the migrated store and the broker they open, failing
with exit 2, who acts, how times print."""

import getpass
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, NoReturn

import dramatiq
import typer
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from schema.settings import Settings

Actor = Annotated[
    str | None, typer.Option(help="Who acts, for the audit log (default cli:<user>).")
]


@dataclass(frozen=True)
class Store:
    """The configured database, migrated: its engine and sessions on it."""

    engine: Engine
    sessions: sessionmaker[Session]


@contextmanager
def open_store(settings: Settings) -> Iterator[Store]:
    """The configured database, refused with exit 2 unless it is at the newest schema, so
    no command reads or writes tables it does not know; disposed of on the way out."""
    from infra.db import is_migrated, make_engine, make_sessions

    engine = make_engine(settings.database_url_value)
    try:
        if not is_migrated(engine):
            fail("the database schema is not up to date; run `genq migrate` first")
        yield Store(engine, make_sessions(engine))
    finally:
        engine.dispose()


def require_migrated(settings: Settings) -> None:
    """Exit 2 unless the database is migrated, before starting a process that opens its own."""
    with open_store(settings):
        pass


@contextmanager
def open_broker(settings: Settings) -> Iterator[dramatiq.Broker]:
    """A broker to send messages with (never to consume), closed on the way out."""
    from infra.brokers import make_broker

    broker = make_broker(settings, consumer=False)
    try:
        yield broker
    finally:
        broker.close()


def fail(message: str) -> NoReturn:
    typer.echo(f"genq: {message}", err=True)
    raise typer.Exit(2)


def default_actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli:unknown"


def when(moment: datetime | None) -> str:
    return f"{moment:%Y-%m-%d %H:%M:%S}" if moment else "-"
