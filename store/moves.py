"""The values the job state machine takes and gives back: a claim on a job, the outcome of an
attempt, and what a move leaves for after commit."""

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

import dramatiq
from sqlalchemy.orm import Session, sessionmaker

from infra import metrics
from schema.jobs import JobStatus
from schema.tables import Job, OutboxMessage, utcnow
from store import outbox


@dataclass(frozen=True)
class Claim:
    """A job held by one worker for one attempt (or one poll) under a lease."""

    job_id: str
    held: JobStatus
    tenant_id: str
    attempt: int
    route_attempt: int
    model: str
    current_model: str
    input: dict[str, Any]
    cache_enabled: bool
    budget_period_start: datetime | None
    reserved_micros: int
    deadline_at: datetime | None
    provider_job_id: str | None
    lost_workers: int
    webhook_url: str | None
    webhook_events: list[str] | None
    submitted_at: datetime | None = None
    """A poll's: when the provider job was submitted (its attempt's start)."""
    provider_started_at: datetime | None = None
    """A poll's: when a poll first saw the provider job started."""


JOBS = Job.__table__
CLAIM_COLUMNS = tuple(
    JOBS.c[name]
    for name in (
        "tenant_id",
        "attempts",
        "route_attempts",
        "model",
        "current_model",
        "input",
        "cache_enabled",
        "budget_period_start",
        "reserved_micros",
        "deadline_at",
        "provider_job_id",
        "lost_workers",
        "webhook_url",
        "webhook_events",
    )
)


class JobHead(NamedTuple):
    """What a worker reads of a job before it claims it: enough to admit it and to decide
    whether it is there to be claimed."""

    id: str
    tenant_id: str
    status: str
    model: str
    current_model: str
    route: str
    input: dict[str, Any]
    lease_expires_at: datetime | None


HEAD_COLUMNS = tuple(JOBS.c[name] for name in JobHead._fields)


class JobRow(NamedTuple):
    """A job as a move leaves it, in the columns its view, its webhook event and the
    ended-job metric read; returned by the move's own UPDATE, so nothing reads it again."""

    id: str
    tenant_id: str
    status: str
    kind: str
    model: str
    route: str
    input: dict[str, Any]
    meta: dict[str, Any]
    webhook_url: str | None
    webhook_events: list[str] | None
    output: dict[str, Any] | None
    usage: dict[str, Any] | None
    cost_micros: int
    cached: bool
    served_by: str | None
    progress: float | None
    deadline_at: datetime | None
    error: dict[str, Any] | None
    attempts: int
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


ROW_COLUMNS = tuple(
    JOBS.c["metadata"].label("meta") if name == "meta" else JOBS.c[name] for name in JobRow._fields
)


class Ended(NamedTuple):
    """A job a move ended, in the columns the ended-job metric reads: what a move that
    announces nothing returns, where the whole row would cost a decode of every column."""

    route: str
    status: str
    created_at: datetime
    finished_at: datetime | None


ENDED_COLUMNS = tuple(JOBS.c[name] for name in Ended._fields)


SUBMITTED_FIELDS = (
    "id",
    "tenant_id",
    "kind",
    "model",
    "route",
    "input",
    "meta",
    "webhook_url",
    "webhook_events",
    "deadline_at",
)


def queued_row(status: str, columns: dict[str, Any]) -> tuple[JobRow, dict[str, Any]]:
    """A new job: its ``JobRow`` and the values of its table row, from the columns its
    submission gives (a new job has no output, cost or attempts yet)."""
    now = utcnow()
    job = JobRow(
        **{name: columns.get(name) for name in SUBMITTED_FIELDS},
        status=status,
        output=None,
        usage=None,
        cost_micros=0,
        cached=False,
        served_by=None,
        progress=None,
        error=None,
        attempts=0,
        created_at=now,
        started_at=None,
        finished_at=None,
    )
    row = {**job._asdict(), **columns, "updated_at": now}
    row["metadata"] = row.pop("meta")
    return job, row


@dataclass(frozen=True)
class AttemptRecord:
    """The values that close an attempt's row (written at the claim): how it ended, what it
    used and cost. An async job's row is closed twice: ``submitted``, then by the poll that
    sees the provider job end."""

    values: dict[str, Any]


@dataclass(frozen=True)
class NextMessage:
    """The message that moves the job on after commit: a retry, a fallback, the next poll."""

    actor: str
    delay_s: float = 0.0


@dataclass(frozen=True)
class Outcome:
    """What one attempt or poll decided: the job's next status, its other columns, the
    attempt to record, what it cost and which message comes next."""

    status: JobStatus
    values: dict[str, Any] = field(default_factory=dict)
    attempt: AttemptRecord | None = None
    spent_micros: int = 0
    next: NextMessage | None = None


@dataclass
class Moved:
    """What a move leaves for after commit: messages to send and jobs that ended."""

    messages: list[OutboxMessage] = field(default_factory=list)
    ended: list[JobRow | Ended] = field(default_factory=list)
    changed: bool = True

    def add(self, other: "Moved") -> None:
        self.messages.extend(other.messages)
        self.ended.extend(other.ended)

    def publish(
        self,
        sessions: sessionmaker[Session],
        broker: dramatiq.Broker,
        mark_later: Callable[[list[int]], None] | None = None,
    ) -> None:
        """After commit: count the jobs that ended and send the staged messages. A message
        that cannot be sent now stays in the outbox for the relay, so the move stands.
        With ``mark_later``, the sent rows are marked in a later batch, not in one more
        transaction of the caller's."""
        for job in self.ended:
            metrics.job_ended(job.route, job.status, job.created_at, job.finished_at)
        if mark_later is None:
            outbox.send_after_commit(sessions, broker, self.messages)
        elif self.messages:
            outbox.send_leaving_marks(sessions, broker, self.messages, mark_later)
