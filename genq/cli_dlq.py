"""``genq dlq …``: review, requeue and purge dead letters, and read the audit log.

Letters are chosen by id, or by filter options (the same as ``list``). An action on a
filter touches every open letter it matches, so it runs only with ``--yes``; ``--dry-run``
shows what it would do (and is audited too).
"""

from typing import Annotated, Literal

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table
from sqlalchemy.orm import Session, sessionmaker

from genq.cli_support import Actor, default_actor, fail, open_broker, open_store, when
from schema.deadletters import ActionResult, Bucket, DLQFilter, Status, Target, parse_since
from schema.settings import Settings
from store import dlq as letters

dlq = typer.Typer(no_args_is_help=True, help="Review, requeue and purge dead letters.")

Route = Annotated[str | None, typer.Option(help="Only letters of this route.")]
Tenant = Annotated[str | None, typer.Option(help="Only letters of this tenant (id or name).")]
ErrorClass = Annotated[str | None, typer.Option(help="Only this error class, e.g. server_error.")]
Source = Annotated[Literal["job", "dramatiq"] | None, typer.Option(help="Only this source.")]
Since = Annotated[
    str | None, typer.Option(help="Failed since: 2026-01-01T00:00 (UTC), or 30m, 2h, 3d, 1w ago.")
]
Ids = Annotated[
    list[str] | None, typer.Argument(help="Dead letter ids (dlq_…).", show_default=False)
]
DryRun = Annotated[bool, typer.Option("--dry-run", help="Show what would change; change nothing.")]
Yes = Annotated[bool, typer.Option("--yes", help="Act on every open letter the filter matches.")]


def _import_dramatiq_letters(settings: Settings, sessions: sessionmaker[Session]) -> None:
    """Bring Dramatiq's own dead letters in first, so ``list`` and ``stats`` show them."""
    import redis

    from infra.redis_conn import connect, redis_url
    from infra.scrub import scrub
    from store.dramatiq_dlq import import_dramatiq_dead_letters

    client = connect(redis_url(settings))
    try:
        import_dramatiq_dead_letters(settings.broker, client, sessions)
    except redis.RedisError as exc:
        problem = scrub(f"{type(exc).__name__}: {exc}")
        typer.echo(
            f"genq: could not read Dramatiq's dead letters ({problem}); showing the rest", err=True
        )
    finally:
        client.close()


def _filter(
    route: str | None,
    tenant: str | None,
    error_class: str | None,
    source: str | None,
    since: str | None,
    status: str = "open",
) -> DLQFilter:
    given = {
        "route": route,
        "tenant": tenant,
        "error_class": error_class,
        "source": source,
        "since": since,
        "status": status,
    }
    try:
        return DLQFilter.model_validate(given)
    except ValidationError as exc:
        problems = [f"--{str(e['loc'][0]).replace('_', '-')}: {e['msg']}" for e in exc.errors()]
        fail("; ".join(problems))


def _target(
    ids: list[str] | None,
    route: str | None,
    tenant: str | None,
    error_class: str | None,
    source: str | None,
    since: str | None,
    *,
    dry_run: bool,
    yes: bool,
) -> Target:
    """Ids, or a filter; a filter acts only with ``--yes`` or as a dry run."""
    filtering = any(option is not None for option in (route, tenant, error_class, source, since))
    if ids and filtering:
        fail("give letter ids or filter options, not both")
    if ids:
        return ids
    if not filtering:
        fail(
            "name letter ids, or filter with --route, --tenant, --error-class, --source or --since"
        )
    if not (dry_run or yes):
        fail(
            "a filter acts on every open letter it matches; "
            "see what it would do with --dry-run, then run it again with --yes"
        )
    return _filter(route, tenant, error_class, source, since)


def _report(result: ActionResult) -> None:
    past = {"requeue": "requeued", "purge": "purged"}[result.action]
    noun = "letter" if result.count == 1 else "letters"
    if result.dry_run:
        typer.echo(f"dry run: would {result.action} {result.count} {noun}")
    else:
        typer.echo(f"{past} {result.count} {noun}")
    for letter_id in result.targets:
        typer.echo(f"  {letter_id}")
    for letter_id, reason in result.skipped.items():
        typer.echo(f"skipped {letter_id}: {reason}")


@dlq.command("list")
def list_letters(
    route: Route = None,
    tenant: Tenant = None,
    error_class: ErrorClass = None,
    source: Source = None,
    since: Since = None,
    status: Annotated[Status, typer.Option(help="Letters in this status.")] = "open",
    limit: Annotated[int, typer.Option(min=1, max=500, help="At most this many.")] = 50,
    cursor: Annotated[str | None, typer.Option(help="Next page, as printed by the last.")] = None,
) -> None:
    """List dead letters, most recent failure first."""
    from store.cursors import InvalidCursorError

    chosen = _filter(route, tenant, error_class, source, since, status)
    settings = Settings()
    with open_store(settings) as store:
        _import_dramatiq_letters(settings, store.sessions)
        with store.sessions() as session:
            try:
                page, next_cursor = letters.list_letters(session, chosen, limit, cursor)
            except (letters.SelectionError, InvalidCursorError) as exc:
                fail(str(exc))
    table = Table(title=f"dead letters ({chosen.status})")
    table.add_column("id", no_wrap=True)
    for column in ("status", "source", "tenant", "route", "model", "error class", "tries"):
        table.add_column(column)
    table.add_column("last failed (UTC)", no_wrap=True)
    table.add_column("error", overflow="fold")
    for letter in page:
        table.add_row(
            letter.id,
            letter.status,
            f"dramatiq:{letter.actor_name}" if letter.actor_name else letter.source,
            letter.tenant_name or letter.tenant_id or "-",
            letter.route or "-",
            letter.model or "-",
            letter.error_class,
            str(len(letter.attempts)),
            when(letter.last_failed_at),
            letter.error_message[:200],
        )
    Console().print(table)
    if next_cursor:
        typer.echo(f"more: --cursor {next_cursor}")


@dlq.command("show")
def show(letter_id: Annotated[str, typer.Argument(help="A dead letter id (dlq_…).")]) -> None:
    """Print a letter as JSON: every field, its attempt history and message."""
    with open_store(Settings()) as store, store.sessions() as session:
        letter = letters.get_letter(session, letter_id)
    if letter is None:
        fail(f"no dead letter {letter_id!r}")
    typer.echo(letter.model_dump_json(indent=2))


@dlq.command("requeue")
def requeue(
    ids: Ids = None,
    route: Route = None,
    tenant: Tenant = None,
    error_class: ErrorClass = None,
    source: Source = None,
    since: Since = None,
    dry_run: DryRun = False,
    yes: Yes = False,
    actor: Actor = None,
) -> None:
    """Requeue letters: a job starts over, a raw Dramatiq message is sent again.

    A job starts from the model it asked for with a fresh attempt budget; its budget
    reservation is made again, past the tenant's limit if need be.
    """
    from schema.routes import load_routes

    target = _target(ids, route, tenant, error_class, source, since, dry_run=dry_run, yes=yes)
    settings = Settings()
    with open_store(settings) as store, open_broker(settings) as broker:
        try:
            result = letters.requeue(
                store.sessions,
                broker,
                load_routes(settings.routes_file),
                target,
                actor or default_actor(),
                dry_run=dry_run,
            )
        except (letters.LetterNotFoundError, letters.SelectionError) as exc:
            fail(str(exc))
    _report(result)


@dlq.command("purge")
def purge(
    ids: Ids = None,
    route: Route = None,
    tenant: Tenant = None,
    error_class: ErrorClass = None,
    source: Source = None,
    since: Since = None,
    dry_run: DryRun = False,
    yes: Yes = False,
    actor: Actor = None,
) -> None:
    """Mark letters purged: they leave the open list but stay on record; jobs are kept."""
    target = _target(ids, route, tenant, error_class, source, since, dry_run=dry_run, yes=yes)
    with open_store(Settings()) as store, store.sessions.begin() as session:
        try:
            result = letters.purge(session, target, actor or default_actor(), dry_run=dry_run)
        except (letters.LetterNotFoundError, letters.SelectionError) as exc:
            fail(str(exc))
    _report(result)


@dlq.command("stats")
def stats(
    since: Annotated[str, typer.Option(help="2026-01-01T00:00 (UTC), or 30m, 2h, 3d ago.")] = "24h",
    bucket: Annotated[Bucket, typer.Option(help="Count per hour or per day.")] = "hour",
) -> None:
    """Count letters that failed since --since: by route, error class and over time."""
    try:
        start = parse_since(since)
    except ValueError as exc:
        fail(f"--since: {exc}")
    settings = Settings()
    with open_store(settings) as store:
        _import_dramatiq_letters(settings, store.sessions)
        with store.sessions() as session:
            found = letters.stats(session, start, bucket)
    console = Console()
    typer.echo(f"{found.total} dead letters since {when(start)} UTC, {found.open} still open")
    for key, rows in (("route", found.by_route), ("error class", found.by_error_class)):
        table = Table(title=f"by {key}")
        table.add_column(key)
        for column in ("count", "open"):
            table.add_column(column, justify="right")
        for row in rows:
            table.add_row(row.key, str(row.count), str(row.open))
        console.print(table)
    most = max((b.count for b in found.over_time), default=0)
    table = Table(title=f"per {bucket} (UTC)")
    for column in ("from", "count", ""):
        table.add_column(column)
    for at in found.over_time:
        table.add_row(when(at.start), str(at.count), "█" * max(1, round(30 * at.count / most)))
    console.print(table)


@dlq.command("audit")
def audit(
    limit: Annotated[int, typer.Option(min=1, max=500, help="At most this many.")] = 20,
) -> None:
    """Show who requeued or purged what, newest first."""
    import json

    with open_store(Settings()) as store, store.sessions() as session:
        entries = letters.recent_audit(session, limit)
    table = Table(title="audit log")
    for column in ("at (UTC)", "actor", "action", "dry run", "count", "filter"):
        table.add_column(column, overflow="fold")
    for entry in entries:
        table.add_row(
            when(entry.at),
            entry.actor,
            entry.action,
            "yes" if entry.dry_run else "no",
            str(entry.count),
            json.dumps(entry.filter),
        )
    Console().print(table)
