"""What the operator commands share: failing with exit 2, who acts, how times print."""

import getpass
from datetime import datetime
from typing import Annotated, NoReturn

import typer

Actor = Annotated[
    str | None, typer.Option(help="Who acts, for the audit log (default cli:<user>).")
]


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
