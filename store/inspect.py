"""Operator views of jobs, across tenants: find them, read one with its attempts and
events, cancel one."""

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import dramatiq
from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session, sessionmaker

from schema.errors import NotFoundError
from schema.pricing import usd
from schema.settings import Settings
from schema.tables import Job, JobAttempt, Tenant, WebhookEvent
from store import job_interventions
from store.dlq import record
from store.jobs import view
from store.tenants import find_tenant


def job_with_attempts(session: Session, job_id: str) -> dict[str, Any] | None:
    """A job as the API shows it, plus its tenant and every attempt."""
    job = session.get(Job, job_id)
    if job is None:
        return None
    attempts = session.scalars(
        select(JobAttempt).where(JobAttempt.job_id == job_id).order_by(JobAttempt.number)
    )
    return {
        **view(job).model_dump(mode="json"),
        "tenant_id": job.tenant_id,
        "attempt_log": [
            {
                "number": a.number,
                "route": a.route,
                "status": a.status,
                "error_class": a.error_class,
                "error_message": a.error_message,
                "http_status": a.http_status,
                "provider_request_id": a.provider_request_id,
                "usage": a.usage,
                "cost_usd": usd(a.cost_micros),
                "cost_estimated": a.cost_estimated,
                "latency_ms": a.latency_ms,
                "started_at": a.started_at.isoformat(),
            }
            for a in attempts
        ],
    }


@dataclass(frozen=True)
class JobQuery:
    """Which jobs an operator looks for: every field given must match."""

    job_id: str | None = None
    tenant: str | None = None
    status: str | None = None
    model: str | None = None
    since: datetime | None = None
    until: datetime | None = None


@dataclass(frozen=True)
class FoundJob:
    id: str
    tenant_id: str
    tenant_name: str | None
    status: str
    model: str
    route: str
    attempts: int
    created_at: datetime
    finished_at: datetime | None


def find_jobs(session: Session, query: JobQuery, limit: int = 100) -> list[FoundJob]:
    """Jobs across tenants matching ``query``, newest first; an unknown tenant finds none."""
    conditions: list[ColumnElement[bool]] = []
    if query.job_id:
        conditions.append(Job.id == query.job_id)
    if query.tenant:
        tenant = find_tenant(session, query.tenant)
        if tenant is None:
            return []
        conditions.append(Job.tenant_id == tenant.id)
    if query.status:
        conditions.append(Job.status == query.status)
    if query.model:
        conditions.append(func.lower(Job.model).contains(query.model.lower(), autoescape=True))
    if query.since:
        conditions.append(Job.created_at >= query.since)
    if query.until:
        conditions.append(Job.created_at < query.until)
    rows = session.execute(
        select(Job, Tenant.name)
        .outerjoin(Tenant, Tenant.id == Job.tenant_id)
        .where(*conditions)
        .order_by(Job.created_at.desc(), Job.id.desc())
        .limit(limit)
    )
    return [
        FoundJob(
            j.id,
            j.tenant_id,
            name,
            j.status,
            j.model,
            j.route,
            j.attempts,
            j.created_at,
            j.finished_at,
        )
        for j, name in rows
    ]


def job_events(session: Session, job_id: str) -> list[dict[str, Any]]:
    """The events the job sent its webhooks, oldest first (type and time; bodies stay in
    the deliveries)."""
    events = session.scalars(
        select(WebhookEvent).where(WebhookEvent.job_id == job_id).order_by(WebhookEvent.created_at)
    )
    return [{"id": e.id, "type": e.type, "created_at": e.created_at} for e in events]


def cancel_job(
    sessions: sessionmaker[Session],
    settings: Settings,
    broker: dramatiq.Broker,
    job_id: str,
    actor: str,
) -> None:
    """Cancel any tenant's unfinished job as an operator, audited; ``JobNotCancelableError``
    if it already ended, ``NotFoundError`` if there is no such job."""
    with sessions.begin() as session:
        if session.get(Job, job_id) is None:
            raise NotFoundError(f"no job {job_id!r}")
        moved = job_interventions.cancel(session, settings, job_id)
        record(session, actor, "job.cancel", {"job_id": job_id}, [job_id])
    moved.publish(sessions, broker)
