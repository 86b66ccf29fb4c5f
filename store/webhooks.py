"""Webhook endpoints, secrets and deliveries, as the API (one tenant) and the operator's
command line (every tenant: ``tenant_id=None``) use them.

Each call is one transaction; outbox rows it stages go out after commit, and the relay
sends them if that fails.
"""

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime

from sqlalchemy.orm import Session, sessionmaker

from infra.destinations import Resolver, UnsafeDestinationError, resolve_host
from schema.errors import FieldError, InvalidInputError
from schema.settings import Settings
from schema.tables import AuditEntry, OutboxMessage
from schema.webhooks import (
    DeliveryView,
    EndpointCreate,
    EndpointUpdate,
    EndpointView,
    RecoverView,
    SecretView,
)
from store import (
    webhook_deliveries,
    webhook_endpoints,
    webhook_events,
    webhook_secrets,
    webhook_targets,
)

Send = Callable[[list[OutboxMessage]], None]


class InvalidEndpointError(InvalidInputError):
    """An endpoint field genq cannot accept, such as a URL the SSRF guard refuses."""


class Webhooks:
    def __init__(self, sessions: sessionmaker[Session], settings: Settings, send: Send) -> None:
        self.sessions = sessions
        self.settings = settings
        self.send = send
        self.resolve: Resolver = resolve_host

    def create_endpoint(self, tenant_id: str, request: EndpointCreate) -> EndpointView:
        """Store the endpoint; the view carries its secret, shown this once."""
        with self.sessions.begin() as session, _vetting():
            endpoint, secret = webhook_endpoints.create(
                session, self.settings, tenant_id, request, self.resolve
            )
            return webhook_endpoints.view(endpoint, secret)

    def endpoints(self, tenant_id: str | None) -> list[EndpointView]:
        with self.sessions() as session:
            return [webhook_endpoints.view(e) for e in webhook_endpoints.listed(session, tenant_id)]

    def endpoint(self, tenant_id: str | None, endpoint_id: str) -> EndpointView | None:
        with self.sessions() as session:
            endpoint = webhook_endpoints.get(session, tenant_id, endpoint_id)
            return webhook_endpoints.view(endpoint) if endpoint else None

    def update_endpoint(
        self,
        tenant_id: str | None,
        endpoint_id: str,
        request: EndpointUpdate,
        *,
        actor: str | None = None,
    ) -> EndpointView | None:
        """Apply the change; audited when an operator acts."""
        with self.sessions.begin() as session, _vetting():
            endpoint = webhook_endpoints.get(session, tenant_id, endpoint_id)
            if endpoint is None:
                return None
            change = request.model_dump(mode="json", exclude_unset=True)
            _audit(session, actor, "webhooks.update", {"endpoint_id": endpoint_id, **change}, [])
            changed = webhook_endpoints.change(
                session, self.settings, endpoint, request, self.resolve
            )
            return webhook_endpoints.view(changed)

    def delete_endpoint(self, tenant_id: str, endpoint_id: str) -> bool:
        """Delete the endpoint with its secrets and delivery log."""
        with self.sessions.begin() as session:
            endpoint = webhook_endpoints.get(session, tenant_id, endpoint_id)
            if endpoint is None:
                return False
            session.delete(endpoint)
            webhook_targets.changed(session, endpoint.tenant_id)
            return True

    def rotate_secret(
        self, tenant_id: str, endpoint_id: str, grace_s: int | None
    ) -> SecretView | None:
        """A new secret for the endpoint; the old one keeps signing for ``grace_s``. None
        if there is no such endpoint."""
        with self.sessions.begin() as session:
            if webhook_endpoints.get(session, tenant_id, endpoint_id) is None:
                return None
            return self._rotate(session, tenant_id, endpoint_id, grace_s)

    def rotate_default_secret(self, tenant_id: str, grace_s: int | None) -> SecretView:
        """A new default secret, which signs deliveries to jobs' own ``webhook_url``."""
        with self.sessions.begin() as session:
            return self._rotate(session, tenant_id, None, grace_s)

    def _rotate(
        self, session: Session, tenant_id: str, endpoint_id: str | None, grace_s: int | None
    ) -> SecretView:
        grace = self.settings.webhook_secret_grace_s if grace_s is None else grace_s
        secret, old_expires_at = webhook_secrets.rotate(session, tenant_id, endpoint_id, grace)
        return SecretView(secret=secret, previous_expires_at=old_expires_at)

    def send_test(self, tenant_id: str, endpoint_id: str) -> DeliveryView | None:
        with self.sessions.begin() as session:
            endpoint = webhook_endpoints.get(session, tenant_id, endpoint_id)
            if endpoint is None:
                return None
            delivery, rows = webhook_events.ping_event(session, endpoint)
            view = webhook_deliveries.view(session, delivery)
        self.send(rows)
        return view

    def deliveries(
        self, where: webhook_deliveries.DeliveryFilter, *, limit: int, cursor: str | None
    ) -> tuple[list[DeliveryView], str | None]:
        with self.sessions() as session:
            found, next_cursor = webhook_deliveries.page(session, where, limit=limit, cursor=cursor)
            return [webhook_deliveries.view(session, d) for d in found], next_cursor

    def delivery(self, tenant_id: str | None, delivery_id: str) -> DeliveryView | None:
        """The delivery with its attempt log."""
        with self.sessions() as session:
            delivery = webhook_deliveries.get(session, tenant_id, delivery_id)
            if delivery is None:
                return None
            return webhook_deliveries.view(session, delivery, with_attempts=True)

    def resend(
        self, tenant_id: str | None, delivery_id: str, *, actor: str | None = None
    ) -> DeliveryView | None:
        """Send the delivery again now, whatever its state; audited when an operator acts."""
        with self.sessions.begin() as session:
            if webhook_deliveries.get(session, tenant_id, delivery_id) is None:
                return None
            rows = webhook_deliveries.resend(session, [delivery_id])
            _audit(session, actor, "webhooks.resend", {"delivery_id": delivery_id}, [delivery_id])
        self.send(rows)
        return self.delivery(tenant_id, delivery_id)

    def recover(
        self,
        tenant_id: str | None,
        endpoint_id: str,
        since: datetime,
        until: datetime | None,
        *,
        actor: str | None = None,
    ) -> RecoverView | None:
        """Send again every failed delivery to the endpoint of an event in [since, until)."""
        with self.sessions.begin() as session:
            if webhook_endpoints.get(session, tenant_id, endpoint_id) is None:
                return None
            ids = webhook_deliveries.failed_between(session, endpoint_id, since, until)
            rows = webhook_deliveries.resend(session, ids) if ids else []
            window = {
                "endpoint_id": endpoint_id,
                "since": since.isoformat(),
                "until": until.isoformat() if until else None,
            }
            _audit(session, actor, "webhooks.recover", window, ids)
        self.send(rows)
        return RecoverView(resent=len(ids), delivery_ids=ids)


@contextmanager
def _vetting() -> Iterator[None]:
    """Turn an SSRF refusal into a 422 on the ``url`` field."""
    try:
        yield
    except UnsafeDestinationError as exc:
        raise InvalidEndpointError([FieldError(("url",), str(exc))]) from exc


def _audit(
    session: Session, actor: str | None, action: str, filter: dict[str, object], ids: list[str]
) -> None:
    if actor is not None:
        session.add(
            AuditEntry(actor=actor, action=action, filter=filter, targets=ids, count=len(ids))
        )
