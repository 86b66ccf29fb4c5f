"""Webhook signing secrets: ``whsec_`` plus 32 random bytes in base64, as Standard Webhooks
writes them. Rotation keeps the old secret signing for a grace period, so a receiver can
switch to the new one without missing a delivery. A secret made or loaded for signing is
registered for redaction, with and without its prefix."""

import base64
import secrets
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, ScalarSelect, String, cast, delete, func, or_, select, update
from sqlalchemy.orm import Session

from infra.scrub import register_secret
from schema.tables import WebhookSecret, utcnow
from schema.webhooks import SECRET_PREFIX

SECRET_BYTES = 32


def new_secret() -> str:
    secret = SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()
    _register(secret)
    return secret


def signing_secrets(session: Session, tenant_id: str, endpoint_id: str | None) -> list[str]:
    """The secrets that sign a delivery now, newest first: the endpoint's, or the tenant's
    default for a job's own ``webhook_url``."""
    now = utcnow()
    found = list(
        session.scalars(
            select(WebhookSecret.secret)
            .where(
                WebhookSecret.tenant_id == tenant_id,
                _owner(endpoint_id),
                or_(WebhookSecret.expires_at.is_(None), WebhookSecret.expires_at > now),
            )
            .order_by(WebhookSecret.id.desc())
        )
    )
    _register(*found)
    return found


def signing_secrets_of(
    tenant_id: ColumnElement[str],
    endpoint_id: ColumnElement[str | None],
    now: ColumnElement[datetime],
) -> ScalarSelect[str]:
    """The secrets that sign a delivery now as one value, to read with the delivery in a
    single statement (``tenant_id`` and ``endpoint_id`` are its columns); ``unpack`` it."""
    return (
        select(
            func.aggregate_strings(cast(WebhookSecret.id, String) + ":" + WebhookSecret.secret, " ")
        )
        .where(
            WebhookSecret.tenant_id == tenant_id,
            WebhookSecret.endpoint_id.is_not_distinct_from(endpoint_id),
            or_(WebhookSecret.expires_at.is_(None), WebhookSecret.expires_at > now),
        )
        .scalar_subquery()
    )


def unpack(packed: str | None) -> list[str]:
    """The secrets of ``signing_secrets_of``, newest first, registered for redaction."""
    numbered = [item.split(":", 1) for item in (packed or "").split()]
    found = [secret for _, secret in sorted(numbered, key=lambda pair: -int(pair[0]))]
    _register(*found)
    return found


def has_default_secret(session: Session, tenant_id: str) -> bool:
    return bool(signing_secrets(session, tenant_id, None))


def rotate(
    session: Session, tenant_id: str, endpoint_id: str | None, grace_s: int
) -> tuple[str, datetime | None]:
    """Add a new secret and let the current ones expire after ``grace_s`` (dropping those
    already expired); return the new secret and when the old one stops signing (None if
    there was none)."""
    now = utcnow()
    expires_at = now + timedelta(seconds=grace_s)
    session.execute(
        delete(WebhookSecret).where(
            WebhookSecret.tenant_id == tenant_id,
            _owner(endpoint_id),
            WebhookSecret.expires_at <= now,
        )
    )
    retired = session.execute(
        update(WebhookSecret)
        .where(
            WebhookSecret.tenant_id == tenant_id,
            _owner(endpoint_id),
            or_(WebhookSecret.expires_at.is_(None), WebhookSecret.expires_at > expires_at),
        )
        .values(expires_at=expires_at)
    ).rowcount
    secret = new_secret()
    session.add(WebhookSecret(tenant_id=tenant_id, endpoint_id=endpoint_id, secret=secret))
    session.flush()
    return secret, expires_at if retired else None


def _register(*found: str) -> None:
    register_secret(*found, *(secret.removeprefix(SECRET_PREFIX) for secret in found))


def _owner(endpoint_id: str | None) -> ColumnElement[bool]:
    if endpoint_id is None:
        return WebhookSecret.endpoint_id.is_(None)
    return WebhookSecret.endpoint_id == endpoint_id
