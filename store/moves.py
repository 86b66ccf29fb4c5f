"""The values the job state machine takes and gives back: a claim on a job, the outcome of an
attempt, and what a move leaves for after commit."""

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import dramatiq
from sqlalchemy.orm import Session, sessionmaker

from infra import metrics
from schema.jobs import JobStatus
from schema.tables import Job, OutboxMessage
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


CLAIM_COLUMNS = (
    Job.tenant_id,
    Job.attempts,
    Job.route_attempts,
    Job.model,
    Job.current_model,
    Job.input,
    Job.cache_enabled,
    Job.budget_period_start,
    Job.reserved_micros,
    Job.deadline_at,
    Job.provider_job_id,
    Job.lost_workers,
)


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
    ended: list[Job] = field(default_factory=list)
    changed: bool = True

    def add(self, other: "Moved") -> None:
        self.messages.extend(other.messages)
        self.ended.extend(other.ended)

    def publish(self, sessions: sessionmaker[Session], broker: dramatiq.Broker) -> None:
        """After commit: count the jobs that ended and send the staged messages. A message
        that cannot be sent now stays in the outbox for the relay, so the move stands."""
        for job in self.ended:
            metrics.job_ended(job)
        outbox.send_after_commit(sessions, broker, self.messages)
