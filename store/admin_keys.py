"""Operator keys for the admin API and the console. A key is shown once, at creation; only
its digest is kept. Its name is who acted, in the audit log; a revoked key keeps its name so
the log stays unambiguous. Its role says what it may do: a ``viewer`` reads everything and
changes nothing, an ``operator`` may also act."""

import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, get_args

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from infra.scrub import register_secret
from schema.errors import ConflictError, NotFoundError
from schema.tables import AdminKey, utcnow
from store.ids import new_id
from store.tenants import hash_key

KEY_PREFIX = "gq_admin_"

Role = Literal["viewer", "operator"]
ROLES: tuple[Role, ...] = get_args(Role)


@dataclass(frozen=True)
class NewAdminKey:
    name: str
    key: str
    role: Role = "operator"


@dataclass(frozen=True)
class AdminIdentity:
    """Who holds a live admin key, and what the key may do."""

    name: str
    role: Role

    @property
    def actor(self) -> str:
        """The name the audit log records for this key's actions."""
        return f"admin:{self.name}"

    @property
    def can_act(self) -> bool:
        return self.role == "operator"


@dataclass(frozen=True)
class AdminKeyInfo:
    name: str
    role: str
    created_at: datetime
    revoked_at: datetime | None


class AdminKeyExistsError(ConflictError):
    """An admin key with this name exists, or existed and was revoked."""


def create_admin_key(session: Session, name: str, role: Role = "operator") -> NewAdminKey:
    """Create a key named ``name``; the plaintext exists only in the return value."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}; got {role!r}")
    if session.scalar(select(AdminKey.id).where(AdminKey.name == name)) is not None:
        raise AdminKeyExistsError(f"an admin key named {name!r} already exists")
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    register_secret(key)
    session.add(AdminKey(id=new_id("adm"), name=name, key_hash=hash_key(key), role=role))
    return NewAdminKey(name, key, role)


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
    return [AdminKeyInfo(k.name, k.role, k.created_at, k.revoked_at) for k in keys]


def identify_admin(session: Session, key: str) -> AdminIdentity | None:
    """Who holds the live admin key ``key``, or None (tenant keys included); a live key
    is registered for redaction."""
    if not key.startswith(KEY_PREFIX):
        return None
    row = session.execute(
        select(AdminKey.name, AdminKey.role).where(
            AdminKey.key_hash == hash_key(key), AdminKey.revoked_at.is_(None)
        )
    ).one_or_none()
    if row is None:
        return None
    register_secret(key)
    return AdminIdentity(row.name, row.role)


def live_identity(session: Session, name: str) -> AdminIdentity | None:
    """The key named ``name`` if it is still live, with its current role (a session
    cookie names its key; revoking the key ends the session)."""
    row = session.execute(
        select(AdminKey.name, AdminKey.role).where(
            AdminKey.name == name, AdminKey.revoked_at.is_(None)
        )
    ).one_or_none()
    return AdminIdentity(row.name, row.role) if row else None
