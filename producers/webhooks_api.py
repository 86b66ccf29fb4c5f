"""The /v1 webhook API: a tenant's endpoints, signing secrets and delivery log."""

import logging
from typing import Annotated

import redis
from fastapi import APIRouter, Query, Request, Response

from producers.app_state import producer_of
from producers.auth import Tenant
from producers.door import CheckedRoute
from producers.errors import ApiError
from schema.errors import FieldError, InvalidInputError
from schema.webhooks import (
    DeliveryPage,
    DeliveryStatus,
    DeliveryView,
    EndpointCreate,
    EndpointPage,
    EndpointUpdate,
    EndpointView,
    RecoverRequest,
    RecoverView,
    SecretRotate,
    SecretView,
)
from store.cursors import InvalidCursorError
from store.webhook_deliveries import DeliveryFilter
from store.webhooks import Webhooks

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/v1", tags=["webhooks"], route_class=CheckedRoute)

Limit = Annotated[int, Query(ge=1, le=100)]


def _webhooks(request: Request) -> Webhooks:
    return producer_of(request).webhooks


def _no_endpoint(endpoint_id: str) -> ApiError:
    return ApiError(404, "not_found", f"no webhook endpoint {endpoint_id!r}")


def _no_delivery(delivery_id: str) -> ApiError:
    return ApiError(404, "not_found", f"no webhook delivery {delivery_id!r}")


@router.post(
    "/webhook-endpoints",
    status_code=201,
    responses={409: {"description": "The tenant has GENQ_WEBHOOK_MAX_ENDPOINTS endpoints."}},
)
def create_endpoint(body: EndpointCreate, tenant_id: Tenant, request: Request) -> EndpointView:
    """Add an endpoint. The response holds its signing secret: store it, it is not shown
    again (rotate to get a new one). A tenant has at most GENQ_WEBHOOK_MAX_ENDPOINTS
    endpoints (409 past it: delete one first)."""
    return _webhooks(request).create_endpoint(tenant_id, body)


@router.get("/webhook-endpoints")
def list_endpoints(tenant_id: Tenant, request: Request) -> EndpointPage:
    return EndpointPage(data=_webhooks(request).endpoints(tenant_id))


@router.get("/webhook-endpoints/{endpoint_id}")
def get_endpoint(endpoint_id: str, tenant_id: Tenant, request: Request) -> EndpointView:
    endpoint = _webhooks(request).endpoint(tenant_id, endpoint_id)
    if endpoint is None:
        raise _no_endpoint(endpoint_id)
    return endpoint


@router.patch("/webhook-endpoints/{endpoint_id}")
def update_endpoint(
    endpoint_id: str, body: EndpointUpdate, tenant_id: Tenant, request: Request
) -> EndpointView:
    """Change the URL, description, event types, or enable / disable the endpoint."""
    endpoint = _webhooks(request).update_endpoint(tenant_id, endpoint_id, body)
    if endpoint is None:
        raise _no_endpoint(endpoint_id)
    return endpoint


@router.delete("/webhook-endpoints/{endpoint_id}", status_code=204)
def delete_endpoint(endpoint_id: str, tenant_id: Tenant, request: Request) -> Response:
    if not _webhooks(request).delete_endpoint(tenant_id, endpoint_id):
        raise _no_endpoint(endpoint_id)
    return Response(status_code=204)


@router.post("/webhook-endpoints/{endpoint_id}/rotate-secret")
def rotate_endpoint_secret(
    endpoint_id: str, tenant_id: Tenant, request: Request, body: SecretRotate | None = None
) -> SecretView:
    """A new secret; the old one keeps signing (both signatures are sent) for the grace."""
    rotated = _webhooks(request).rotate_secret(tenant_id, endpoint_id, body and body.grace_s)
    if rotated is None:
        raise _no_endpoint(endpoint_id)
    return rotated


@router.post("/webhook-secret/rotate")
def rotate_default_secret(
    tenant_id: Tenant, request: Request, body: SecretRotate | None = None
) -> SecretView:
    """A new default secret, which signs deliveries to jobs' own ``webhook_url``."""
    return _webhooks(request).rotate_default_secret(tenant_id, body and body.grace_s)


@router.post(
    "/webhook-endpoints/{endpoint_id}/test",
    status_code=202,
    responses={429: {"description": "Past GENQ_WEBHOOK_TEST_SENDS_PER_MINUTE; see Retry-After."}},
)
def test_endpoint(endpoint_id: str, tenant_id: Tenant, request: Request) -> DeliveryView:
    """Send a ``webhook.test`` event to the endpoint; follow it in the delivery log. At
    most GENQ_WEBHOOK_TEST_SENDS_PER_MINUTE per endpoint (429 with Retry-After past it)."""
    webhooks = _webhooks(request)
    if webhooks.endpoint(tenant_id, endpoint_id) is None:
        raise _no_endpoint(endpoint_id)
    _count_test_send(request, endpoint_id)
    delivery = webhooks.send_test(tenant_id, endpoint_id)
    if delivery is None:
        raise _no_endpoint(endpoint_id)
    return delivery


def _count_test_send(request: Request, endpoint_id: str) -> None:
    """Apply the endpoint's test-send rate; if Redis cannot say, let the send go (it waits
    in the outbox for the broker, on the same Redis, anyway)."""
    try:
        producer_of(request).webhook_test_rate.hit(endpoint_id)
    except redis.RedisError:
        logger.warning("webhook test rate unavailable; not limiting", exc_info=True)


@router.post("/webhook-endpoints/{endpoint_id}/recover", status_code=202)
def recover(
    endpoint_id: str, body: RecoverRequest, tenant_id: Tenant, request: Request
) -> RecoverView:
    """Send again every failed delivery to this endpoint of an event in [since, until)."""
    recovered = _webhooks(request).recover(tenant_id, endpoint_id, body.since, body.until)
    if recovered is None:
        raise _no_endpoint(endpoint_id)
    return recovered


@router.get("/webhook-endpoints/{endpoint_id}/deliveries")
def endpoint_deliveries(
    endpoint_id: str,
    tenant_id: Tenant,
    request: Request,
    status: DeliveryStatus | None = None,
    limit: Limit = 20,
    cursor: str | None = None,
) -> DeliveryPage:
    if _webhooks(request).endpoint(tenant_id, endpoint_id) is None:
        raise _no_endpoint(endpoint_id)
    where = DeliveryFilter(tenant_id=tenant_id, endpoint_id=endpoint_id, status=status)
    return _page(request, where, limit, cursor)


@router.get("/webhook-deliveries")
def list_deliveries(
    tenant_id: Tenant,
    request: Request,
    endpoint_id: str | None = None,
    job_id: str | None = None,
    status: DeliveryStatus | None = None,
    limit: Limit = 20,
    cursor: str | None = None,
) -> DeliveryPage:
    """Newest first; filter by endpoint, job or status."""
    where = DeliveryFilter(tenant_id, endpoint_id, job_id, status)
    return _page(request, where, limit, cursor)


@router.get("/webhook-deliveries/{delivery_id}")
def get_delivery(delivery_id: str, tenant_id: Tenant, request: Request) -> DeliveryView:
    """The delivery and every attempt: status code, response excerpt, duration, error."""
    delivery = _webhooks(request).delivery(tenant_id, delivery_id)
    if delivery is None:
        raise _no_delivery(delivery_id)
    return delivery


@router.post("/webhook-deliveries/{delivery_id}/resend", status_code=202)
def resend_delivery(delivery_id: str, tenant_id: Tenant, request: Request) -> DeliveryView:
    """Send the delivery again now, with the same ``webhook-id`` and body."""
    delivery = _webhooks(request).resend(tenant_id, delivery_id)
    if delivery is None:
        raise _no_delivery(delivery_id)
    return delivery


def _page(request: Request, where: DeliveryFilter, limit: int, cursor: str | None) -> DeliveryPage:
    try:
        found, next_cursor = _webhooks(request).deliveries(where, limit=limit, cursor=cursor)
    except InvalidCursorError as exc:
        raise InvalidInputError([FieldError(("cursor",), str(exc))]) from exc
    return DeliveryPage(data=found, next_cursor=next_cursor)
