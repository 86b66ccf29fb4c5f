"""Tenant authentication for the /v1 API: a bearer API key, checked against its digest."""

from typing import Annotated

from fastapi import Depends, Header, Request

from producers.errors import ApiError
from producers.producer import Producer
from producers.tenants import authenticate


def tenant_of(request: Request, authorization: Annotated[str | None, Header()] = None) -> str:
    scheme, _, token = (authorization or "").partition(" ")
    producer: Producer = request.app.state.producer
    tenant_id = None
    if scheme.lower() == "bearer" and token:
        with producer.sessions() as session:
            tenant_id = authenticate(session, token.strip())
    if tenant_id is None:
        raise ApiError(
            401,
            "unauthorized",
            "send a valid tenant API key as 'Authorization: Bearer <key>'",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return tenant_id


Tenant = Annotated[str, Depends(tenant_of)]
