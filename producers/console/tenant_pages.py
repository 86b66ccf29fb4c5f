"""Tenants (usage, budget, rate) and the audit log, filterable."""

from datetime import timedelta

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from producers.app_state import producer_of
from producers.console.render import page
from producers.console.session import Viewer
from schema.tables import utcnow
from schema.usage import GroupBy
from store import dlq, usage
from store.tenants import find_tenant, list_tenants

router = APIRouter(prefix="/console")

USAGE_DAYS = 30


@router.get("/tenants", response_class=HTMLResponse)
def tenants_view(request: Request, user: Viewer) -> HTMLResponse:
    """Every tenant with its budget and rate."""
    with producer_of(request).sessions() as session:
        tenants = list_tenants(session)
    return page(request, "tenants.html", user, tenants=tenants)


@router.get("/tenants/{ref}", response_class=HTMLResponse)
def tenant_view(request: Request, user: Viewer, ref: str) -> HTMLResponse:
    """One tenant's usage by model over the last 30 days, its budget and its rate."""
    now = utcnow()
    with producer_of(request).sessions() as session:
        tenant = find_tenant(session, ref)
        report = (
            usage.report(session, tenant.id, now - timedelta(days=USAGE_DAYS), now, GroupBy.MODEL)
            if tenant
            else None
        )
    response = page(request, "tenant.html", user, tenant=tenant, report=report, days=USAGE_DAYS)
    if tenant is None:
        response.status_code = 404
    return response


@router.get("/audit", response_class=HTMLResponse)
def audit_view(request: Request, user: Viewer, by: str = "", action: str = "") -> HTMLResponse:
    """Who did what, newest first, filtered by part of the actor or the action."""
    with producer_of(request).sessions() as session:
        entries = dlq.recent_audit(session, 200, actor=by[:200], action=action[:50])
    return page(request, "audit.html", user, entries=entries, by=by, action=action)
