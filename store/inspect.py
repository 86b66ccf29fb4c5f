"""Operator views of jobs, across tenants."""

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from schema.pricing import usd
from schema.tables import Job, JobAttempt
from store.jobs import view


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
