"""Storing submitted jobs: idempotency, the budget reservation and each job with its outbox
message, in the caller's transaction. A batch is one transaction: every job is stored, or
none is."""

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from schema.errors import ConflictError
from schema.jobs import JobCreate
from schema.pricing import max_cost_micros
from schema.routes import Routes
from schema.tables import Job, OutboxMessage, utcnow
from store import budgets, lifecycle
from store.ids import new_id


class IdempotencyConflictError(ConflictError):
    """An idempotency key was reused with a different request body (Stripe's rule: 409)."""


@dataclass(frozen=True)
class Submission:
    request: JobCreate
    idempotency_key: str | None


@dataclass
class Submitted:
    job: Job
    replayed: bool
    outbox_row: OutboxMessage | None = None


def request_hash(request: JobCreate) -> str:
    """A digest of the canonical request body, to tell a replay from a reused key."""
    body = request.model_dump(mode="json", exclude={"idempotency_key"})
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def store(
    session: Session,
    routes: Routes,
    tenant_id: str,
    submissions: Sequence[Submission],
    default_deadline_s: int = 86_400,
) -> list[Submitted]:
    """Insert jobs and their outbox rows in the caller's transaction (call ``check`` first).

    A key seen before with the same body returns the first job; with another body it
    raises ``IdempotencyConflictError``. A concurrent insert of the same key surfaces as
    an ``IntegrityError`` on flush; the caller retries and then finds the row.
    """
    results: list[Submitted] = []
    seen: dict[str, Job] = {}
    for submission in submissions:
        digest = request_hash(submission.request)
        key = submission.idempotency_key
        previous = _previous(session, tenant_id, key, seen) if key else None
        if previous is not None:
            if previous.request_hash != digest:
                raise IdempotencyConflictError(
                    f"Idempotency-Key {key!r} was already used with a different request body"
                )
            results.append(Submitted(previous, replayed=True))
            continue
        submitted = _insert(session, routes, tenant_id, submission, digest, default_deadline_s)
        if key:
            seen[key] = submitted.job
        results.append(submitted)
    _reserve(session, tenant_id, [r.job for r in results if not r.replayed])
    session.flush()
    return results


def _reserve(session: Session, tenant_id: str, jobs: list[Job]) -> None:
    """Reserve the new jobs' maximum cost in one step: all fit in the budget, or none."""
    if not jobs:
        return
    start = budgets.reserve(session, tenant_id, sum(job.reserved_micros for job in jobs))
    for job in jobs:
        job.budget_period_start = start


def _previous(session: Session, tenant_id: str, key: str, seen: dict[str, Job]) -> Job | None:
    return seen.get(key) or session.scalar(
        select(Job).where(Job.tenant_id == tenant_id, Job.idempotency_key == key)
    )


def _insert(
    session: Session,
    routes: Routes,
    tenant_id: str,
    submission: Submission,
    digest: str,
    default_deadline_s: int,
) -> Submitted:
    request = submission.request
    deadline_s = request.deadline_s or default_deadline_s
    route, model = routes.resolve(request.model)
    job, row = lifecycle.insert(
        session,
        id=new_id("job"),
        tenant_id=tenant_id,
        kind=route.kind,
        model=request.model,
        current_model=request.model,
        route=route.name,
        input=request.input,
        cache_enabled=request.cache,
        deadline_at=utcnow() + timedelta(seconds=deadline_s),
        reserved_micros=max_cost_micros(route.protocol, route.models[model], request.input),
        meta=request.metadata,
        webhook_url=str(request.webhook_url) if request.webhook_url else None,
        webhook_events=request.webhook_events,
        idempotency_key=submission.idempotency_key,
        request_hash=digest,
    )
    return Submitted(job, replayed=False, outbox_row=row)
