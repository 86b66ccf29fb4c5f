"""Writing dead letters: a job that failed in a way a person should look at, with its
whole attempt history and no secrets."""

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from infra.scrub import scrub, scrub_value
from schema.tables import DeadLetter, Job, JobAttempt, utcnow
from store.ids import new_id


def attempt_history(session: Session, job_id: str) -> list[dict[str, Any]]:
    attempts = session.scalars(
        select(JobAttempt).where(JobAttempt.job_id == job_id).order_by(JobAttempt.number)
    )
    return [
        {
            "number": a.number,
            "route": a.route,
            "model": a.model,
            "status": a.status,
            "error_class": a.error_class,
            "error_message": scrub(a.error_message) if a.error_message else None,
            "http_status": a.http_status,
            "provider_request_id": a.provider_request_id,
            "latency_ms": a.latency_ms,
            "started_at": a.started_at.isoformat(),
            "finished_at": a.finished_at.isoformat() if a.finished_at else None,
        }
        for a in attempts
    ]


def record_job(
    session: Session, job_id: str, error_class: str, error_message: str, *, bare: bool = False
) -> DeadLetter:
    """Dead-letter ``job_id`` in the caller's transaction (after its last attempt row).
    ``bare`` leaves out the job's metadata, for a job whose own fields cannot be stored."""
    session.flush()
    job = session.get_one(Job, job_id)
    history = attempt_history(session, job_id)
    failed = [
        datetime.fromisoformat(a["finished_at"])
        for a in history
        if a["status"] == "failed" and a["finished_at"]
    ]
    now = utcnow()
    letter = DeadLetter(
        id=new_id("dlq"),
        source="job",
        status="open",
        job_id=job.id,
        tenant_id=job.tenant_id,
        route=job.route,
        model=job.current_model,
        queue_name=None,
        actor_name=None,
        error_class=error_class,
        error_message=scrub(error_message),
        attempts=history,
        message={"model": job.model}
        if bare
        else {"model": job.model, "metadata": scrub_value(job.meta)},
        first_failed_at=min(failed, default=now),
        last_failed_at=max(failed, default=now),
    )
    session.add(letter)
    return letter
