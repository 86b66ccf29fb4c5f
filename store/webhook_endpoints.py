"""A tenant's webhook endpoints: create, read, update, delete, disable.

Every URL passes the SSRF guard when it is stored, and again, resolved afresh, each
time a worker sends to it. A tenant has at most ``webhook_max_endpoints`` of them,
enabled or not, so the events genq sends for it stay bounded.
"""

from datetime import datetime

from sqlalchemy import func, select, true, update
from sqlalchemy.orm import Session

from infra.destinations import Destination, Resolver, check_url, resolve_host
from schema.errors import LimitExceededError
from schema.settings import Settings
from schema.tables import OutboxMessage, Tenant, WebhookEndpoint, utcnow
from schema.webhooks import EndpointCreate, EndpointUpdate, EndpointView
from store import webhook_events, webhook_secrets, webhook_targets
from store.ids import new_id


class EndpointLimitError(LimitExceededError):
    """The tenant already has as many endpoints as it may."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            f"a tenant may have at most {limit} webhook endpoints; delete one to add another"
        )
        self.limit = limit


def guard(settings: Settings, url: str, resolve: Resolver = resolve_host) -> Destination:
    """Vet ``url`` under the settings' allowlist and https rule; raise
    ``UnsafeDestinationError`` saying why genq will not call it."""
    return check_url(
        url,
        allow_networks=settings.webhook_allow_networks,
        https_only=settings.webhook_https_only,
        resolve=resolve,
    )


def create(
    session: Session,
    settings: Settings,
    tenant_id: str,
    request: EndpointCreate,
    resolve: Resolver = resolve_host,
) -> tuple[WebhookEndpoint, str]:
    """Store a vetted endpoint with a new secret; return both (the secret only here).
    ``EndpointLimitError`` if the tenant has ``webhook_max_endpoints`` already."""
    url = str(request.url)
    guard(settings, url, resolve)
    _lock_tenant(session, tenant_id)
    endpoint = WebhookEndpoint(
        id=new_id("whe"),
        tenant_id=tenant_id,
        url=url,
        description=request.description,
        event_types=_types(request.event_types),
        enabled=request.enabled,
    )
    session.add(endpoint)
    session.flush()
    _check_count(session, tenant_id, settings.webhook_max_endpoints)
    webhook_targets.changed(session, tenant_id)
    secret, _ = webhook_secrets.rotate(session, tenant_id, endpoint.id, grace_s=0)
    return endpoint, secret


def get(session: Session, tenant_id: str | None, endpoint_id: str) -> WebhookEndpoint | None:
    """The endpoint if it belongs to the tenant (another tenant's is as absent as none);
    any tenant's for an operator (None)."""
    query = select(WebhookEndpoint).where(WebhookEndpoint.id == endpoint_id)
    if tenant_id is not None:
        query = query.where(WebhookEndpoint.tenant_id == tenant_id)
    return session.scalar(query)


def listed(session: Session, tenant_id: str | None) -> list[WebhookEndpoint]:
    """A tenant's endpoints, oldest first; every tenant's for an operator (None)."""
    query = select(WebhookEndpoint).order_by(WebhookEndpoint.created_at, WebhookEndpoint.id)
    if tenant_id is not None:
        query = query.where(WebhookEndpoint.tenant_id == tenant_id)
    return list(session.scalars(query))


def change(
    session: Session,
    settings: Settings,
    endpoint: WebhookEndpoint,
    request: EndpointUpdate,
    resolve: Resolver = resolve_host,
) -> WebhookEndpoint:
    """Apply the given fields; enabling an endpoint clears why it was disabled and its
    failure streak."""
    fields = request.model_fields_set
    if "url" in fields and request.url is not None:
        endpoint.url = str(request.url)
        guard(settings, endpoint.url, resolve)
    if "description" in fields and request.description is not None:
        endpoint.description = request.description
    if "event_types" in fields:
        endpoint.event_types = _types(request.event_types)
    if "enabled" in fields and request.enabled is not None:
        endpoint.enabled = request.enabled
        endpoint.disabled_reason = None if request.enabled else "disabled by the tenant"
        endpoint.disabled_at = None if request.enabled else utcnow()
        endpoint.failing_since = None
    session.flush()
    webhook_targets.changed(session, endpoint.tenant_id)
    return endpoint


def disable(
    session: Session, endpoint_id: str, reason: str, *, failing_before: datetime | None = None
) -> list[OutboxMessage]:
    """Disable an enabled endpoint (only if it has been failing since ``failing_before``,
    when given) and tell the tenant's others; return their outbox rows. A conditional
    UPDATE, so concurrent failures announce it once."""
    now = utcnow()
    still_failing = (
        true() if failing_before is None else WebhookEndpoint.failing_since <= failing_before
    )
    disabled = session.execute(
        update(WebhookEndpoint)
        .where(WebhookEndpoint.id == endpoint_id, WebhookEndpoint.enabled.is_(True), still_failing)
        .values(enabled=False, disabled_reason=reason, disabled_at=now, updated_at=now)
    ).rowcount
    if not disabled:
        return []
    endpoint = session.get_one(WebhookEndpoint, endpoint_id, populate_existing=True)
    webhook_targets.changed(session, endpoint.tenant_id)
    return webhook_events.endpoint_disabled(session, endpoint)


def view(endpoint: WebhookEndpoint, secret: str | None = None) -> EndpointView:
    return EndpointView(
        id=endpoint.id,
        url=endpoint.url,
        description=endpoint.description,
        event_types=endpoint.event_types,
        enabled=endpoint.enabled,
        disabled_reason=endpoint.disabled_reason,
        disabled_at=endpoint.disabled_at,
        failing_since=endpoint.failing_since,
        created_at=endpoint.created_at,
        updated_at=endpoint.updated_at,
        secret=secret,
    )


def _lock_tenant(session: Session, tenant_id: str) -> None:
    """Serialize a tenant's endpoint creates, so concurrent ones cannot all pass the count:
    FOR NO KEY UPDATE on PostgreSQL (new jobs' foreign keys do not wait for it). SQLite
    has no row locks; there the insert before the count holds its one writer lock."""
    session.execute(select(Tenant.id).where(Tenant.id == tenant_id).with_for_update(key_share=True))


def _check_count(session: Session, tenant_id: str, limit: int) -> None:
    """Raise if the tenant now has more than ``limit`` endpoints (the caller rolls back)."""
    count = session.scalar(
        select(func.count())
        .select_from(WebhookEndpoint)
        .where(WebhookEndpoint.tenant_id == tenant_id)
    )
    if (count or 0) > limit:
        raise EndpointLimitError(limit)


def _types(event_types: list[str] | None) -> list[str] | None:
    return sorted({str(event_type) for event_type in event_types}) if event_types else None
