"""Storing submitted jobs: idempotency, the budget reservation and each job with its outbox
message, in the caller's transaction (``store``), or for one job on PostgreSQL in one
statement committed alone (``store_alone``). A batch is one transaction: every job is
stored, or none is."""

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from infra.db import violated
from infra.direct import Executes
from schema.errors import ConflictError
from schema.jobs import JobCreate
from schema.pricing import max_cost_micros
from schema.routes import Routes
from schema.tables import Job, OutboxMessage, utcnow
from store import budgets, lifecycle
from store.ids import new_id
from store.moves import JobRow

KEY_TAKEN = "uq_jobs_tenant_id_idempotency_key"  # a tenant's key names one job


class IdempotencyConflictError(ConflictError):
    """An idempotency key was reused with a different request body (Stripe's rule: 409)."""


@dataclass(frozen=True)
class Submission:
    request: JobCreate
    idempotency_key: str | None


@dataclass
class Submitted:
    job: Job | JobRow
    outbox_row: OutboxMessage | None = None
    replayed: bool = False


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
    budget_period: str | None = None,
) -> list[Submitted]:
    """Insert jobs and their outbox rows in the caller's transaction (call ``check`` first).

    A key seen before with the same body returns the first job; with another body it
    raises ``IdempotencyConflictError``. A concurrent insert of the same key surfaces as
    an ``IntegrityError`` at its insert; the caller retries and then finds the row.
    ``budget_period``, the tenant's period as the caller last read it, saves reading the
    tenant's budget terms; if it is stale, ``StalePeriodError`` asks the caller to retry
    without it. The reservation comes before the inserts: the budget row is taken before
    any job's key, the order ``store_alone`` takes them in, so the two never wait on each
    other in a cycle.
    """
    planned: list[Submitted | tuple[int, bool]] = []  # a replay, or (new job, replayed)
    new: list[dict[str, Any]] = []
    seen: dict[str, tuple[int, str]] = {}  # a key earlier in this batch: its job, its body
    terms: budgets.Terms | None = None  # read at the first new job: replays reserve nothing
    for submission in submissions:
        digest = request_hash(submission.request)
        key = submission.idempotency_key
        if key is not None and key in seen:
            index, first_digest = seen[key]
            _require_same_body(key, first_digest, digest)
            planned.append((index, True))
            continue
        previous = _previous(session, tenant_id, key) if key else None
        if previous is not None:
            _require_same_body(key, previous.request_hash, digest)
            planned.append(Submitted(previous, replayed=True))
            continue
        terms = terms or _terms(session, tenant_id, budget_period)
        if key:
            seen[key] = (len(new), digest)
        planned.append((len(new), False))
        new.append(
            _columns(routes, tenant_id, submission, digest, default_deadline_s, terms.period_start)
        )
    if terms is not None:
        reserved = sum(columns["reserved_micros"] for columns in new)
        budgets.reserve(session, tenant_id, reserved, terms=terms)
    written = [Submitted(*lifecycle.insert(session, **columns)) for columns in new]
    return [
        plan if isinstance(plan, Submitted) else _replayed(written[plan[0]], plan[1])
        for plan in planned
    ]


def _replayed(submitted: Submitted, replayed: bool) -> Submitted:
    return Submitted(submitted.job, replayed=True) if replayed else submitted


def _require_same_body(key: str | None, first_digest: str, digest: str) -> None:
    if first_digest != digest:
        raise IdempotencyConflictError(
            f"Idempotency-Key {key!r} was already used with a different request body"
        )


def _terms(session: Session, tenant_id: str, budget_period: str | None) -> budgets.Terms:
    if budget_period is None:
        return budgets.budget_terms(session, tenant_id)
    return budgets.guessed_terms(budget_period)


def _previous(session: Session, tenant_id: str, key: str) -> Job | None:
    return session.scalar(select(Job).where(Job.tenant_id == tenant_id, Job.idempotency_key == key))


def store_alone(
    connection: Executes,
    routes: Routes,
    tenant_id: str,
    submission: Submission,
    default_deadline_s: int,
    budget_period: str,
) -> Submitted | None:
    """Store one new job, its message and its reservation in one statement committed alone
    (``lifecycle.insert_reserving``), the tenant's period taken as ``budget_period``.

    None, with nothing written, when that did not do it: the job's key used before, the
    budget, a moved period, a period with no row yet. ``store`` then stores the job in a
    transaction, or says why it cannot (a replay, a conflict, the budget)."""
    digest = request_hash(submission.request)
    period_start = budgets.guessed_terms(budget_period).period_start
    columns = _columns(routes, tenant_id, submission, digest, default_deadline_s, period_start)
    try:
        written = lifecycle.insert_reserving(connection, budget_period, **columns)
    except IntegrityError as exc:
        if submission.idempotency_key is None or violated(exc) != KEY_TAKEN:
            raise
        return None
    return None if written is None else Submitted(*written)


def _columns(
    routes: Routes,
    tenant_id: str,
    submission: Submission,
    digest: str,
    default_deadline_s: int,
    period_start: datetime,
) -> dict[str, Any]:
    """A new job's columns, its reservation (the most it may cost) among them."""
    request = submission.request
    deadline_s = request.deadline_s or default_deadline_s
    route, model = routes.resolve(request.model)
    return {
        "id": new_id("job"),
        "tenant_id": tenant_id,
        "kind": route.kind,
        "model": request.model,
        "current_model": request.model,
        "route": route.name,
        "input": request.input,
        "cache_enabled": request.cache,
        "deadline_at": utcnow() + timedelta(seconds=deadline_s),
        "reserved_micros": max_cost_micros(route.protocol, route.models[model], request.input),
        "budget_period_start": period_start,
        "meta": request.metadata,
        "webhook_url": str(request.webhook_url) if request.webhook_url else None,
        "webhook_events": request.webhook_events,
        "idempotency_key": submission.idempotency_key,
        "request_hash": digest,
    }
