"""``genq …``: start the processes, manage tenants, look at jobs, run the demo."""

import json
import os
import sys
from datetime import UTC, datetime
from typing import Annotated

import typer

from genq.cli_admin import admin
from genq.cli_dlq import dlq
from genq.cli_routes import routes
from genq.cli_support import fail, open_store, require_migrated
from genq.cli_webhooks import webhooks
from schema.settings import Settings
from schema.usage import GroupBy

app = typer.Typer(no_args_is_help=True, help="genq: queue AI generation jobs.")
tenants = typer.Typer(no_args_is_help=True, help="Manage tenants and their API keys.")
jobs = typer.Typer(no_args_is_help=True, help="Look at jobs as an operator.")
app.add_typer(tenants, name="tenants")
app.add_typer(jobs, name="jobs")
app.add_typer(dlq, name="dlq")
app.add_typer(admin, name="admin")
app.add_typer(webhooks, name="webhooks")
app.add_typer(routes, name="routes")


def _logging(settings: Settings) -> None:
    from infra.logs import configure_logging

    configure_logging(settings.log_format, settings.log_level)


def _register_secrets(settings: Settings) -> None:
    """Register the configured provider keys and secret settings for redaction."""
    from infra.known_secrets import register_configured
    from schema.routes import load_routes

    register_configured(settings, load_routes(settings.routes_file))


@app.command()
def migrate() -> None:
    """Create or upgrade the database schema."""
    from infra.db import make_engine
    from infra.db import migrate as upgrade

    upgrade(make_engine(Settings().database_url_value))
    typer.echo("genq: database schema is up to date")


@app.command()
def api(
    host: Annotated[str | None, typer.Option(help="Bind address [GENQ_API_HOST].")] = None,
    port: Annotated[int | None, typer.Option(help="Port [GENQ_API_PORT].")] = None,
) -> None:
    """Serve the HTTP API (OpenAPI at /docs)."""
    import uvicorn

    from infra.error_reports import init_error_reports
    from producers import Producer
    from producers.api import create_app

    settings = Settings()
    _logging(settings)
    init_error_reports(settings, "api")
    require_migrated(settings)
    uvicorn.run(
        create_app(Producer(settings)),
        host=host or settings.api_host,
        port=port or settings.api_port,
        log_config=None,
    )


PREFETCH_PER_THREAD_ON_LOOP = 4


@app.command()
def worker(
    processes: Annotated[int | None, typer.Option(help="[GENQ_WORKER_PROCESSES]")] = None,
    threads: Annotated[int | None, typer.Option(help="[GENQ_WORKER_THREADS]")] = None,
) -> None:
    """Run Dramatiq worker processes for genq's actors (metrics on GENQ_WORKER_METRICS_PORT)."""
    from workers.metrics_dir import MetricsPortTakenError, worker_environment

    settings = Settings()
    require_migrated(settings)
    threads = threads or settings.worker_threads
    args = [
        sys.executable,
        "-m",
        "dramatiq",
        "workers.main",
        "--processes",
        str(processes or settings.worker_processes),
        "--threads",
        str(threads),
    ]
    try:
        env = worker_environment(settings, dict(os.environ))
    except MetricsPortTakenError as exc:
        typer.echo(f"genq: {exc}", err=True)
        raise typer.Exit(2) from None
    # Bounded prefetch: a killed worker strands only what it held (back on the queue after
    # the broker's heartbeat timeout); Dramatiq's default is 2 per thread, and 1000 per
    # thread of delayed messages. A worker with a call loop acknowledges each message as
    # soon as its job is claimed, so it holds a few per thread: with only one, its
    # consumer would wait out an idle backoff between every batch.
    per_thread = PREFETCH_PER_THREAD_ON_LOOP if settings.worker_in_flight else 1
    env["dramatiq_queue_prefetch"] = str(settings.worker_prefetch or threads * per_thread)
    # The runtime sizes its pools from the threads the worker really runs.
    env["GENQ_WORKER_THREADS"] = str(threads)
    env["dramatiq_delay_queue_prefetch"] = str(settings.worker_delay_prefetch)
    # A fresh interpreter, so the metrics directory and prefetch are set before any import
    # reads them.
    os.execve(sys.executable, args, env)


@app.command()
def scheduler() -> None:
    """Run the scheduler: periodic work such as relaying the outbox."""
    from infra.error_reports import init_error_reports
    from workers.scheduler import build_scheduler, serve_metrics

    settings = Settings()
    _logging(settings)
    _register_secrets(settings)
    init_error_reports(settings, "scheduler")
    require_migrated(settings)
    serve_metrics(settings.scheduler_metrics_port)
    scheduler, leadership = build_scheduler(settings)
    try:
        scheduler.start()
    finally:
        leadership.release()


@app.command()
def sim(
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8900,
    host: Annotated[str, typer.Option(help="Bind address.")] = "127.0.0.1",
    latency_ms: Annotated[float, typer.Option(help="Added to every answer.")] = 0.0,
    time_scale: Annotated[
        float, typer.Option(min=0.0001, help="Speed of video and prediction jobs: 0.02 = 50x.")
    ] = 1.0,
) -> None:
    """Run the provider simulator (all five protocols) for local runs and tests."""
    from simulator import SimConfig
    from simulator.server import serve

    serve(SimConfig(latency_ms=latency_ms, time_scale=time_scale), host=host, port=port)


@tenants.command("create")
def tenants_create(name: Annotated[str, typer.Argument(help="A unique tenant name.")]) -> None:
    """Create a tenant and print its API key and webhook secret (shown this once)."""
    from store.tenants import TenantExistsError, create_tenant

    name = name.strip()
    if not name or len(name) > 200:
        fail("tenant name must be 1-200 characters")
    with open_store(Settings()) as store, store.sessions.begin() as session:
        try:
            tenant = create_tenant(session, name)
        except TenantExistsError as exc:
            fail(str(exc))
    typer.echo(f"tenant  {tenant.tenant_id}  {tenant.name}")
    typer.echo(f"api key {tenant.api_key}")
    typer.echo(f"webhook secret {tenant.webhook_secret}")
    typer.echo(
        "Store both now: genq keeps only the key's hash, and shows the secret again only "
        "when rotated (POST /v1/webhook-secret/rotate).",
        err=True,
    )


@tenants.command("budget")
def tenants_budget(
    tenant: Annotated[str, typer.Argument(help="Tenant id or name.")],
    usd: Annotated[
        float | None, typer.Option(min=0, help="Limit in US dollars; omit for no limit.")
    ] = None,
    period: Annotated[str, typer.Option(help="day, week or month.")] = "month",
) -> None:
    """Set a tenant's spending limit per period; enqueues past it get 402."""
    from schema.pricing import MICROS
    from store.budgets import PERIODS, set_budget

    if period not in PERIODS:
        fail(f"--period must be one of {', '.join(PERIODS)}")
    limit = None if usd is None else round(usd * MICROS)
    with open_store(Settings()) as store:
        try:
            found = set_budget(store.engine, tenant, limit, period)
        except LookupError as exc:
            fail(exc.args[0])
    shown = "no limit" if usd is None else f"${usd:.2f} per {period}"
    typer.echo(f"tenant {found.id} ({found.name}): {shown}")


@app.command()
def usage(
    tenant: Annotated[str | None, typer.Option(help="Tenant id or name; all when omitted.")] = None,
    start: Annotated[
        datetime | None, typer.Option("--from", help="Start (UTC); default: this month.")
    ] = None,
    end: Annotated[datetime | None, typer.Option("--to", help="End (UTC); default: now.")] = None,
    group_by: Annotated[GroupBy, typer.Option(help="model or day.")] = GroupBy.MODEL,
) -> None:
    """Print usage and cost, by model or by day."""
    from rich.console import Console
    from rich.table import Table

    from schema.tables import utcnow
    from store.tenants import find_tenant
    from store.usage import report

    now = utcnow()
    start_at = (start or now.replace(day=1, hour=0, minute=0, second=0)).replace(tzinfo=UTC)
    end_at = end.replace(tzinfo=UTC) if end else now
    if start_at >= end_at:
        fail("--from must be before --to")
    with open_store(Settings()) as store, store.sessions() as session:
        tenant_id = None
        if tenant is not None:
            named = find_tenant(session, tenant)
            if named is None:
                fail(f"no tenant {tenant!r}")
            tenant_id = named.id
        found = report(session, tenant_id, start_at, end_at, group_by)
    table = Table(title=f"usage {start_at:%Y-%m-%d %H:%M} to {end_at:%Y-%m-%d %H:%M} UTC")
    columns = ("key", "jobs", "attempts", "cache hits", "tokens in", "tokens out", "images")
    for column in (*columns, "video s", "cost $"):
        table.add_column(column, justify="left" if column == "key" else "right")
    for row in [*found.data, found.total]:
        table.add_row(
            row.key,
            *(str(v) for v in (row.jobs, row.attempts, row.cache_hits, row.input_tokens)),
            *(str(v) for v in (row.output_tokens, row.images, round(row.video_seconds, 1))),
            f"{row.cost_usd:.6f}",
        )
    Console(width=140).print(table)
    if found.budget is not None and found.budget.limit_usd is not None:
        typer.echo(
            f"budget: ${found.budget.spent_usd:.6f} spent + ${found.budget.reserved_usd:.6f} "
            f"reserved of ${found.budget.limit_usd:.2f} per {found.budget.period}"
        )


@jobs.command("show")
def jobs_show(job_id: Annotated[str, typer.Argument(help="A job id (job_…).")]) -> None:
    """Print a job and its attempts as JSON, every configured secret redacted."""
    from infra.scrub import scrub_known, scrub_value
    from store.inspect import job_with_attempts

    settings = Settings()
    _register_secrets(settings)
    with open_store(settings) as store, store.sessions() as session:
        found = job_with_attempts(session, job_id)
    if found is None:
        fail(f"no job {job_id!r}")
    typer.echo(json.dumps(scrub_value(found, scrub_known), indent=2, default=str))


@app.command()
def demo(
    jobs: Annotated[int, typer.Option("--jobs", min=1, max=500, help="How many chat jobs.")] = 24,
) -> None:
    """Run genq end to end against the simulator and show what happened."""
    from genq.demo import run_demo

    raise typer.Exit(run_demo(jobs))
