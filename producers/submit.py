"""Job submission: validate, apply idempotency, and store each job with its outbox message.

A batch is one transaction: every job is stored, or none is.
"""

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from producers import budgets, outbox
from producers.ids import new_id
from schema.destinations import UnsafeDestinationError
from schema.inputs import validate_input
from schema.jobs import JobCreate, JobStatus
from schema.names import JOBS_QUEUE, RUN_JOB
from schema.pricing import max_cost_micros
from schema.routes import Routes, UnknownModelError
from schema.tables import Job, OutboxMessage, utcnow

Loc = tuple[str | int, ...]


@dataclass(frozen=True)
class FieldError:
    loc: Loc
    message: str


class InvalidJobError(ValueError):
    """The request is well-formed JSON but names an unknown model or has a bad input."""

    def __init__(self, errors: list[FieldError]) -> None:
        super().__init__("; ".join(f"{'.'.join(map(str, e.loc))}: {e.message}" for e in errors))
        self.errors = errors


class IdempotencyConflictError(ValueError):
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


def check(
    routes: Routes,
    submissions: Sequence[Submission],
    loc: Loc = (),
    vet_webhook_url: Callable[[str], object] | None = None,
) -> None:
    """Raise ``InvalidJobError`` naming every bad field, before anything is written.

    ``vet_webhook_url`` raises ``UnsafeDestinationError`` for a URL genq must not call.
    """
    errors: list[FieldError] = []
    for index, submission in enumerate(submissions):
        at = (*loc, index) if len(submissions) > 1 or loc else ()
        webhook_url = submission.request.webhook_url
        if webhook_url is not None and vet_webhook_url is not None:
            try:
                vet_webhook_url(str(webhook_url))
            except UnsafeDestinationError as exc:
                errors.append(FieldError((*at, "webhook_url"), str(exc)))
        try:
            route, _ = routes.resolve(submission.request.model)
        except UnknownModelError as exc:
            errors.append(FieldError((*at, "model"), str(exc)))
            continue
        try:
            validate_input(route.protocol, submission.request.input)
        except ValidationError as exc:
            errors.extend(
                FieldError((*at, "input", *error["loc"]), error["msg"]) for error in exc.errors()
            )
    if errors:
        raise InvalidJobError(errors)


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
    job = Job(
        id=new_id("job"),
        tenant_id=tenant_id,
        kind=route.kind,
        model=request.model,
        current_model=request.model,
        route=route.name,
        status=JobStatus.QUEUED,
        input=request.input,
        cache_enabled=request.cache,
        deadline_at=utcnow() + timedelta(seconds=deadline_s),
        reserved_micros=max_cost_micros(route.protocol, route.models[model], request.input),
        meta=request.metadata,
        webhook_url=str(request.webhook_url) if request.webhook_url else None,
        webhook_events=request.webhook_events,
        idempotency_key=submission.idempotency_key,
        request_hash=digest,
        attempts=0,
    )
    session.add(job)
    row = outbox.stage(session, JOBS_QUEUE, RUN_JOB, {"job_id": job.id})
    return Submitted(job, replayed=False, outbox_row=row)
