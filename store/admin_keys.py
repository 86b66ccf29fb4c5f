"""Operator keys for the admin API. A key is shown once, at creation; only its digest is
kept. Its name is who acted, in the audit log; a revoked key keeps its name so the log
stays unambiguous."""

import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from infra.scrub import register_secret
from schema.errors import ConflictError, NotFoundError
from schema.tables import AdminKey, utcnow
from store.ids import new_id
from store.tenants import hash_key

KEY_PREFIX = "gq_admin_"


@dataclass(frozen=True)
class NewAdminKey:
    name: str
    key: str


@dataclass(frozen=True)
class AdminKeyInfo:
    name: str
    created_at: datetime
    revoked_at: datetime | None


class AdminKeyExistsError(ConflictError):
    """An admin key with this name exists, or existed and was revoked."""


def create_admin_key(session: Session, name: str) -> NewAdminKey:
    """Create a key named ``name``; the plaintext exists only in the return value."""
    if session.scalar(select(AdminKey.id).where(AdminKey.name == name)) is not None:
        raise AdminKeyExistsError(f"an admin key named {name!r} already exists")
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    register_secret(key)
    session.add(AdminKey(id=new_id("adm"), name=name, key_hash=hash_key(key)))
    return NewAdminKey(name, key)


def revoke_admin_key(session: Session, name: str) -> None:
    """Revoke the key named ``name``; ``LookupError`` if no live key has that name."""
    revoked = session.execute(
        update(AdminKey)
        .where(AdminKey.name == name, AdminKey.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    ).rowcount
    if not revoked:
        raise NotFoundError(f"no live admin key named {name!r}")


def list_admin_keys(session: Session) -> list[AdminKeyInfo]:
    keys = session.scalars(select(AdminKey).order_by(AdminKey.created_at))
    return [AdminKeyInfo(k.name, k.created_at, k.revoked_at) for k in keys]


def authenticate_admin(session: Session, key: str) -> str | None:
    """The name of the live admin key ``key``, or None (tenant keys included); a live key
    is registered for redaction."""
    if not key.startswith(KEY_PREFIX):
        return None
    name = session.scalar(
        select(AdminKey.name).where(
            AdminKey.key_hash == hash_key(key), AdminKey.revoked_at.is_(None)
        )
    )
    if name is not None:
        register_secret(key)
    return name
