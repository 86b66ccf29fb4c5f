"""Tenants and their API keys. A key is shown once, at creation; only its digest is kept.

A tenant also gets its default webhook secret, which signs deliveries to a job's own
``webhook_url``; it too is shown only here (or when rotated)."""

import hashlib
import secrets
from dataclasses import dataclass

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from infra.scrub import register_secret
from schema.errors import ConflictError
from schema.tables import ApiKey, Tenant
from store.ids import new_id
from store.webhook_secrets import rotate

KEY_PREFIX = "gq_"


@dataclass(frozen=True)
class NewTenant:
    tenant_id: str
    name: str
    api_key: str
    webhook_secret: str


class TenantExistsError(ConflictError):
    """A tenant with this name already exists."""


def hash_key(api_key: str) -> str:
    return hashlib.sha256(api_key.encode()).hexdigest()


def create_tenant(session: Session, name: str) -> NewTenant:
    """Create a tenant with one API key; the plaintext key exists only in the return value."""
    if session.scalar(select(Tenant.id).where(Tenant.name == name)) is not None:
        raise TenantExistsError(f"a tenant named {name!r} already exists")
    tenant = Tenant(id=new_id("ten"), name=name)
    session.add(tenant)
    session.flush()
    api_key = issue_key(session, tenant.id)
    webhook_secret, _ = rotate(session, tenant.id, None, grace_s=0)
    return NewTenant(tenant.id, name, api_key, webhook_secret)


def find_tenant(session: Session, ref: str) -> Tenant | None:
    """The tenant whose id or name is ``ref``, as operators name tenants either way; an id
    wins over another tenant's name."""
    return session.scalars(
        select(Tenant)
        .where((Tenant.id == ref) | (Tenant.name == ref))
        .order_by((Tenant.id == ref).desc())
        .limit(1)
    ).first()


def issue_key(session: Session, tenant_id: str) -> str:
    api_key = KEY_PREFIX + secrets.token_urlsafe(32)
    register_secret(api_key)
    session.add(
        ApiKey(
            id=new_id("key"), tenant_id=tenant_id, prefix=api_key[:10], key_hash=hash_key(api_key)
        )
    )
    return api_key


@dataclass(frozen=True)
class KeyHolder:
    """What a request needs to know of the tenant whose key it carries."""

    tenant_id: str
    rate_per_minute: int | None
    budget_period: str | None


_HOLDER = (
    select(ApiKey.tenant_id, Tenant.rate_per_minute, Tenant.budget_period)
    .join(Tenant, Tenant.id == ApiKey.tenant_id)
    .where(ApiKey.key_hash == bindparam("key_hash"), ApiKey.revoked_at.is_(None))
)


def key_holder(session: Session, api_key: str) -> KeyHolder | None:
    """The tenant owning ``api_key`` with its enqueue rate and budget period, in one
    query; None for an unknown or revoked key. A live key is registered for redaction."""
    if not api_key.startswith(KEY_PREFIX):
        return None
    row = session.execute(_HOLDER, {"key_hash": hash_key(api_key)}).first()
    if row is None:
        return None
    register_secret(api_key)
    return KeyHolder(row.tenant_id, row.rate_per_minute, row.budget_period)


def authenticate(session: Session, api_key: str) -> str | None:
    """The tenant id owning ``api_key``, or None for an unknown or revoked key."""
    holder = key_holder(session, api_key)
    return holder.tenant_id if holder else None


def list_tenants(session: Session) -> list[Tenant]:
    """Every tenant by name (their keys are never read here)."""
    return list(session.scalars(select(Tenant).order_by(Tenant.name)))
