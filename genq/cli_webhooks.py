"""``genq webhooks …``: the operator's view of every tenant's endpoints and deliveries,
resend and recover (audited), re-enable a disabled endpoint, and verify a captured
delivery as a customer would."""

import sys
from collections.abc import Iterator
from contextlib import closing, contextmanager
from functools import partial
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from genq.cli_support import Actor, default_actor, fail, open_broker, open_store, when
from infra.redis_conn import connect, redis_url
from schema.settings import Settings
from schema.webhooks import DeliveryStatus, DeliveryView, EndpointUpdate
from store import webhook_targets
from store.outbox import send_after_commit
from store.webhook_targets import EndpointCache
from store.webhooks import Webhooks

webhooks = typer.Typer(no_args_is_help=True, help="Webhook endpoints and deliveries.")

EndpointId = Annotated[str, typer.Argument(help="A webhook endpoint id (whe_…).")]
DeliveryId = Annotated[str, typer.Argument(help="A webhook delivery id (whd_…).")]


@contextmanager
def _webhooks() -> Iterator[Webhooks]:
    """The service behind the /v1 webhook API, used across every tenant (``tenant_id=None``)."""
    settings = Settings()
    with (
        open_store(settings) as store,
        open_broker(settings) as broker,
        closing(connect(redis_url(settings))) as client,
    ):
        webhook_targets.attach(store.sessions, EndpointCache(client))
        yield Webhooks(store.sessions, settings, partial(send_after_commit, store.sessions, broker))


@webhooks.command("endpoints")
def list_endpoints(
    tenant: Annotated[str | None, typer.Option(help="Only this tenant's (id).")] = None,
) -> None:
    """Every endpoint, with why it is disabled and since when it fails."""
    with _webhooks() as service:
        found = service.endpoints(tenant)
    table = Table("id", "url", "enabled", "failing since", "disabled because")
    for endpoint in found:
        table.add_row(
            endpoint.id,
            endpoint.url,
            "yes" if endpoint.enabled else "no",
            when(endpoint.failing_since),
            endpoint.disabled_reason or "-",
        )
    Console().print(table)


@webhooks.command("deliveries")
def list_deliveries(
    tenant: Annotated[str | None, typer.Option(help="Only this tenant's (id).")] = None,
    endpoint: Annotated[str | None, typer.Option(help="Only to this endpoint.")] = None,
    job: Annotated[str | None, typer.Option(help="Only this job's events.")] = None,
    status: Annotated[DeliveryStatus | None, typer.Option(help="Only in this status.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=500)] = 50,
) -> None:
    """The newest deliveries first."""
    from store.webhook_deliveries import DeliveryFilter

    where = DeliveryFilter(tenant, endpoint, job, status)
    with _webhooks() as service:
        found, _ = service.deliveries(where, limit=limit, cursor=None)
    table = Table("id", "event", "status", "attempts", "last", "created", "url")
    for delivery in found:
        table.add_row(
            delivery.id,
            delivery.event_type,
            delivery.status,
            str(delivery.attempts),
            str(delivery.last_status_code or delivery.last_error or "-")[:40],
            when(delivery.created_at),
            delivery.url,
        )
    Console().print(table)


@webhooks.command("show")
def show(delivery_id: DeliveryId) -> None:
    """A delivery and its attempt log."""
    with _webhooks() as service:
        delivery = service.delivery(None, delivery_id)
    if delivery is None:
        fail(f"no webhook delivery {delivery_id!r}")
    _print_delivery(delivery)


@webhooks.command("resend")
def resend(delivery_id: DeliveryId, actor: Actor = None) -> None:
    """Send a delivery again now (same webhook-id and body); audited."""
    with _webhooks() as service:
        delivery = service.resend(None, delivery_id, actor=actor or default_actor())
    if delivery is None:
        fail(f"no webhook delivery {delivery_id!r}")
    typer.echo(f"resent {delivery.id} ({delivery.webhook_id}) to {delivery.url}")


@webhooks.command("recover")
def recover(
    endpoint_id: EndpointId,
    since: Annotated[str, typer.Option(help="2026-01-01T00:00 (UTC), or 30m, 2h, 3d ago.")],
    until: Annotated[str | None, typer.Option(help="Same forms; default now.")] = None,
    actor: Actor = None,
) -> None:
    """Send again every failed delivery to an endpoint of an event in [since, until)."""
    from schema.deadletters import parse_since

    try:
        start = parse_since(since)
        end = parse_since(until) if until else None
    except ValueError as exc:
        fail(f"--since/--until: {exc}")
    if end is not None and end <= start:
        fail("--until must come after --since")
    with _webhooks() as service:
        recovered = service.recover(None, endpoint_id, start, end, actor=actor or default_actor())
    if recovered is None:
        fail(f"no webhook endpoint {endpoint_id!r}")
    typer.echo(f"resent {recovered.resent} failed deliveries")
    for delivery_id in recovered.delivery_ids:
        typer.echo(f"  {delivery_id}")


@webhooks.command("enable")
def enable(endpoint_id: EndpointId, actor: Actor = None) -> None:
    """Re-enable a disabled endpoint (then recover what it missed); audited."""
    with _webhooks() as service:
        endpoint = service.update_endpoint(
            None, endpoint_id, EndpointUpdate(enabled=True), actor=actor or default_actor()
        )
    if endpoint is None:
        fail(f"no webhook endpoint {endpoint_id!r}")
    typer.echo(f"enabled {endpoint.id} {endpoint.url}")


@webhooks.command("verify")
def verify(
    secret: Annotated[
        str,
        typer.Option(
            envvar="GENQ_WEBHOOK_SECRET",
            help="The endpoint's secret, whsec_… (better from the environment than argv).",
        ),
    ],
    file: Annotated[
        Path | None, typer.Argument(help="A captured raw HTTP request; default stdin.")
    ] = None,
    ignore_age: Annotated[
        bool, typer.Option("--ignore-age", help="Accept a capture older than 5 minutes.")
    ] = False,
) -> None:
    """Verify a captured delivery with the standardwebhooks library.

    Exit 0 if it is genuine, 1 if not, 2 if the input is not a webhook request.
    """
    from standardwebhooks import Webhook

    from workers.webhooks.verification import (
        CapturedRequest,
        MalformedCaptureError,
        WebhookVerificationError,
        verify,
    )

    try:
        Webhook(secret)
    except Exception:
        fail("--secret is not a webhook secret (whsec_ followed by base64)")
    try:
        raw = file.read_bytes() if file else sys.stdin.buffer.read()
        request = CapturedRequest.parse(raw)
    except (OSError, MalformedCaptureError) as exc:
        fail(str(exc))
    try:
        event = verify(secret, request, check_age=not ignore_age)
    except (WebhookVerificationError, UnicodeDecodeError, ValueError) as exc:
        typer.echo(f"not verified: {exc}", err=True)
        raise typer.Exit(1) from None
    event_type = event.get("type") if isinstance(event, dict) else None
    typer.echo(f"verified: {request.headers['webhook-id']} {event_type}")


def _print_delivery(delivery: DeliveryView) -> None:
    typer.echo(f"delivery   {delivery.id}")
    typer.echo(f"webhook-id {delivery.webhook_id}  ({delivery.event_type})")
    typer.echo(f"to         {delivery.url}")
    typer.echo(f"status     {delivery.status}, {delivery.attempts} attempt(s)")
    if delivery.next_attempt_at:
        typer.echo(f"next       {when(delivery.next_attempt_at)}")
    table = Table("#", "at", "outcome", "status", "ms", "response / error")
    for attempt in delivery.attempt_log or []:
        table.add_row(
            str(attempt.number),
            when(attempt.started_at),
            attempt.outcome,
            str(attempt.status_code or "-"),
            str(attempt.duration_ms),
            (attempt.error or attempt.response_excerpt or "")[:80],
        )
    Console().print(table)
