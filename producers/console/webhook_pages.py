"""Webhooks: endpoints (enabled, failing since, why disabled) and deliveries with their
attempt log; resend a delivery, recover an endpoint's window, enable an endpoint."""

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from producers.app_state import producer_of
from producers.console.render import page
from producers.console.session import Operator, Viewer
from schema.deadletters import parse_since
from schema.webhooks import DeliveryStatus, EndpointUpdate
from store.webhook_deliveries import DeliveryFilter

router = APIRouter(prefix="/console/webhooks")


@router.get("", response_class=HTMLResponse)
def webhooks_view(request: Request, user: Viewer, status: str = "") -> HTMLResponse:
    """Every endpoint, and the latest deliveries (optionally of one status)."""
    webhooks = producer_of(request).webhooks
    statuses = [s.value for s in DeliveryStatus]
    chosen = DeliveryStatus(status) if status in statuses else None
    deliveries, _ = webhooks.deliveries(DeliveryFilter(status=chosen), limit=100, cursor=None)
    return page(
        request,
        "webhooks.html",
        user,
        endpoints=webhooks.endpoints(None),
        deliveries=deliveries,
        status=chosen.value if chosen else "",
        statuses=statuses,
    )


@router.get("/deliveries/{delivery_id}", response_class=HTMLResponse)
def delivery_view(request: Request, user: Viewer, delivery_id: str) -> HTMLResponse:
    """One delivery with every attempt."""
    delivery = producer_of(request).webhooks.delivery(None, delivery_id)
    response = page(request, "delivery.html", user, delivery=delivery)
    if delivery is None:
        response.status_code = 404
    return response


@router.post("/deliveries/{delivery_id}/resend")
def resend(request: Request, user: Operator, delivery_id: str) -> Response:
    """Send the delivery again now (audited)."""
    webhooks = producer_of(request).webhooks
    if webhooks.resend(None, delivery_id, actor=user.identity.actor) is None:
        return page(request, "refused.html", user, message=f"no delivery {delivery_id!r}")
    return RedirectResponse(f"/console/webhooks/deliveries/{delivery_id}", status_code=303)


@router.post("/endpoints/{endpoint_id}/enable")
def enable(request: Request, user: Operator, endpoint_id: str) -> Response:
    """Enable a disabled endpoint (audited)."""
    webhooks = producer_of(request).webhooks
    change = EndpointUpdate(enabled=True)
    if webhooks.update_endpoint(None, endpoint_id, change, actor=user.identity.actor) is None:
        return page(request, "refused.html", user, message=f"no endpoint {endpoint_id!r}")
    return RedirectResponse("/console/webhooks", status_code=303)


@router.post("/endpoints/{endpoint_id}/recover")
def recover(
    request: Request,
    user: Operator,
    endpoint_id: str,
    since: Annotated[str, Form(max_length=40)] = "24h",
) -> Response:
    """Send again every failed delivery to the endpoint since ``since`` (audited)."""
    try:
        start = parse_since(since)
    except ValueError as exc:
        return page(request, "refused.html", user, message=str(exc))
    webhooks = producer_of(request).webhooks
    if webhooks.recover(None, endpoint_id, start, None, actor=user.identity.actor) is None:
        return page(request, "refused.html", user, message=f"no endpoint {endpoint_id!r}")
    return RedirectResponse("/console/webhooks", status_code=303)
