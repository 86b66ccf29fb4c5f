"""``genq admin keys …``: create, revoke and list the keys of the admin HTTP API."""

from typing import Annotated

import typer

from genq.cli_support import fail, open_store
from schema.settings import Settings

admin = typer.Typer(no_args_is_help=True, help="Operate genq: keys of the admin API.")
keys = typer.Typer(no_args_is_help=True, help="Admin API keys; a key's name is its actor.")
admin.add_typer(keys, name="keys")

Name = Annotated[str, typer.Argument(help="Who holds the key, e.g. oncall or alice.")]
RoleOption = Annotated[
    str, typer.Option("--role", help="viewer (reads only) or operator (may also act).")
]


@keys.command("create")
def create(name: Name, role: RoleOption = "operator") -> None:
    """Create an admin key and print it (shown this once)."""
    from store.admin_keys import ROLES, AdminKeyExistsError, create_admin_key

    name = name.strip()
    if not name or len(name) > 200:
        fail("admin key name must be 1-200 characters")
    if role not in ROLES:
        fail(f"role must be one of {', '.join(ROLES)}")
    with open_store(Settings()) as store, store.sessions.begin() as session:
        try:
            created = create_admin_key(session, name, role)  # type: ignore[arg-type]
        except AdminKeyExistsError as exc:
            fail(str(exc))
    typer.echo(f"admin key {created.name}")
    typer.echo(f"role      {created.role}")
    typer.echo(f"key       {created.key}")
    typer.echo("Store the key now: genq keeps only its hash and cannot show it again.", err=True)


@keys.command("revoke")
def revoke(name: Name) -> None:
    """Revoke an admin key at once; its name stays in the audit log."""
    from store.admin_keys import revoke_admin_key

    with open_store(Settings()) as store, store.sessions.begin() as session:
        try:
            revoke_admin_key(session, name)
        except LookupError as exc:
            fail(str(exc.args[0]))
    typer.echo(f"revoked admin key {name}")


@keys.command("list")
def list_keys() -> None:
    """List admin keys by name (never the keys themselves)."""
    from store.admin_keys import list_admin_keys

    with open_store(Settings()) as store, store.sessions() as session:
        found = list_admin_keys(session)
    for key in found:
        revoked = f"revoked {key.revoked_at:%Y-%m-%d %H:%M}" if key.revoked_at else "live"
        typer.echo(f"{key.name}\t{key.role}\tcreated {key.created_at:%Y-%m-%d %H:%M}\t{revoked}")
