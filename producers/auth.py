"""Tenant authentication for the /v1 API: a bearer API key, checked against its digest."""

from collections.abc import Callable
from typing import Annotated, TypeVar

from fastapi import Depends, Header, Request
from sqlalchemy.orm import Session

from producers.app_state import producer_of
from producers.errors import ApiError
from store.tenants import authenticate

Who = TypeVar("Who")


def bearer(
    request: Request,
    authorization: str | None,
    check: Callable[[Session, str], Who | None],
    key_kind: str,
) -> Who:
    """Who the ``Authorization: Bearer`` key belongs to, by ``check``; else a 401."""
    scheme, _, token = (authorization or "").partition(" ")
    who = None
    if scheme.lower() == "bearer" and token:
        with producer_of(request).sessions() as session:
            who = check(session, token.strip())
    if who is None:
        raise ApiError(
            401,
            "unauthorized",
            f"send a valid {key_kind} as 'Authorization: Bearer <key>'",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return who


def tenant_of(request: Request, authorization: Annotated[str | None, Header()] = None) -> str:
    return bearer(request, authorization, authenticate, "tenant API key")


Tenant = Annotated[str, Depends(tenant_of)]
