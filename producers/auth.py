"""Tenant authentication for the /v1 API: a bearer API key, checked against its digest
(through the producer's ``TenantKeys``, which trusts a checked key for a short time)."""

from collections.abc import Callable
from typing import Annotated, TypeVar

from fastapi import Depends, Header, Request
from sqlalchemy.orm import Session

from producers.app_state import producer_of
from producers.errors import ApiError

Who = TypeVar("Who")


def bearer(
    request: Request,
    authorization: str | None,
    check: Callable[[Session, str], Who | None],
    key_kind: str,
) -> Who:
    """Who the ``Authorization: Bearer`` key belongs to, by ``check``; else a 401."""

    def in_session(token: str) -> Who | None:
        with producer_of(request).sessions() as session:
            return check(session, token)

    return bearer_of(authorization, in_session, key_kind)


def bearer_of(authorization: str | None, check: Callable[[str], Who | None], key_kind: str) -> Who:
    """Who the ``Authorization: Bearer`` key belongs to, by ``check``; else a 401."""
    scheme, _, token = (authorization or "").partition(" ")
    who = check(token.strip()) if scheme.lower() == "bearer" and token else None
    if who is None:
        raise ApiError(
            401,
            "unauthorized",
            f"send a valid {key_kind} as 'Authorization: Bearer <key>'",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return who


def tenant_of(request: Request, authorization: Annotated[str | None, Header()] = None) -> str:
    holder = bearer_of(authorization, producer_of(request).tenant_keys.holder, "tenant API key")
    return holder.tenant_id


Tenant = Annotated[str, Depends(tenant_of)]
