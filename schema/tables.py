"""ORM tables (SQLAlchemy 2.0 typed). The database is the source of truth for jobs.

The same tables and migrations run on SQLite (embedded default) and PostgreSQL. The
webhook tables live in ``schema/webhook_tables.py`` and are imported here, so
``Base.metadata`` holds every table and callers import them all from this module.
"""

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import Mapped, mapped_column

from schema.table_base import Base, JSONDoc, UTCDateTime, utcnow
from schema.webhook_tables import (
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
    WebhookSecret,
)

__all__ = [
    "Base",
    "JSONDoc",
    "UTCDateTime",
    "WebhookAttempt",
    "WebhookDelivery",
    "WebhookEndpoint",
    "WebhookEvent",
    "WebhookSecret",
    "utcnow",
]


class Tenant(Base):
    __tablename__ = "tenants"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    budget_micros: Mapped[int | None] = mapped_column(BigInteger)
    budget_period: Mapped[str] = mapped_column(String(10), default="month")
    rate_per_minute: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class BudgetPeriod(Base):
    """A tenant's spend in one budget period: settled spend plus reservations of jobs in
    flight. Enqueue reserves with a conditional UPDATE, so parallel requests cannot
    together pass the limit."""

    __tablename__ = "budget_periods"

    tenant_id: Mapped[str] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True
    )
    period_start: Mapped[datetime] = mapped_column(primary_key=True)
    reserved_micros: Mapped[int] = mapped_column(BigInteger, default=0)
    spent_micros: Mapped[int] = mapped_column(BigInteger, default=0)


class BudgetEntry(Base):
    """Spend added and reservation given back by one job's move, committed with it and
    folded into its ``BudgetPeriod`` by the scheduler: an INSERT locks no row a tenant's
    other jobs need. No foreign key, whose check would lock the tenant's row each time."""

    __tablename__ = "budget_ledger"
    __table_args__ = (Index(None, "tenant_id", "period_start"),)

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    tenant_id: Mapped[str] = mapped_column(String(40))
    period_start: Mapped[datetime]
    spent_micros: Mapped[int] = mapped_column(BigInteger)
    released_micros: Mapped[int] = mapped_column(BigInteger)


class ApiKey(Base):
    """A tenant API key, stored as a SHA-256 digest: keys are random, so a slow hash buys
    nothing, and the digest is what a lookup needs."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    prefix: Mapped[str] = mapped_column(String(20))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None]


class Job(Base):
    __tablename__ = "jobs"
    __table_args__ = (
        UniqueConstraint("tenant_id", "idempotency_key"),
        Index(None, "tenant_id", "created_at"),
        Index(None, "status"),
        Index(None, "status", "next_poll_at"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(20))
    model: Mapped[str] = mapped_column(String(200))
    current_model: Mapped[str] = mapped_column(String(200))
    route: Mapped[str] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(20))
    input: Mapped[dict[str, Any]]
    cache_enabled: Mapped[bool] = mapped_column(default=True)
    cached: Mapped[bool] = mapped_column(default=False)
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", default=dict)
    webhook_url: Mapped[str | None] = mapped_column(Text)
    webhook_events: Mapped[list[str] | None]
    idempotency_key: Mapped[str | None] = mapped_column(String(255))
    request_hash: Mapped[str] = mapped_column(String(64))
    output: Mapped[dict[str, Any] | None]
    usage: Mapped[dict[str, Any] | None]
    error: Mapped[dict[str, Any] | None]
    provider_request_id: Mapped[str | None] = mapped_column(String(200))
    served_by: Mapped[str | None] = mapped_column(String(200))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    route_attempts: Mapped[int] = mapped_column(Integer, default=0)
    lost_workers: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    cost_micros: Mapped[int] = mapped_column(BigInteger, default=0)
    reserved_micros: Mapped[int] = mapped_column(BigInteger, default=0)
    budget_period_start: Mapped[datetime | None]
    provider_job_id: Mapped[str | None] = mapped_column(String(200))
    next_poll_at: Mapped[datetime | None]
    polls: Mapped[int] = mapped_column(Integer, default=0)
    progress: Mapped[float | None]
    provider_started_at: Mapped[datetime | None]
    """When a poll first saw the provider job out of the provider's queue."""
    deadline_at: Mapped[datetime | None]
    lease_expires_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class JobAttempt(Base):
    """One provider call for a job: what happened, how long it took, what it used.

    The row is written when the job is claimed, before the call may start (``started``),
    and closed when the attempt ends; a worker lost mid-attempt leaves it to be closed as
    ``lost`` with an estimated cost (``cost_estimated``)."""

    __tablename__ = "job_attempts"
    __table_args__ = (UniqueConstraint("job_id", "number"), Index(None, "finished_at"))

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    number: Mapped[int]
    route: Mapped[str] = mapped_column(String(100))
    model: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(20))
    error_class: Mapped[str | None] = mapped_column(String(50))
    error_message: Mapped[str | None] = mapped_column(Text)
    http_status: Mapped[int | None]
    provider_request_id: Mapped[str | None] = mapped_column(String(200))
    usage: Mapped[dict[str, Any] | None]
    input_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    output_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    images: Mapped[int] = mapped_column(Integer, default=0)
    video_seconds: Mapped[float] = mapped_column(default=0.0)
    predict_seconds: Mapped[float] = mapped_column(default=0.0)
    cost_micros: Mapped[int] = mapped_column(BigInteger, default=0)
    cost_estimated: Mapped[bool] = mapped_column(default=False, server_default=false())
    latency_ms: Mapped[int | None]
    started_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]


class OutboxMessage(Base):
    """A Dramatiq message committed with the state change that calls for it.

    The relay sends rows whose ``sent_at`` is empty; re-sending one is safe because
    every actor is idempotent on the job's state. A row with a ``coalesce_key`` is not
    sent while a message under that key waits.
    """

    __tablename__ = "outbox"
    __table_args__ = (Index(None, "sent_at", "available_at"),)

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    message_id: Mapped[str] = mapped_column(String(40), unique=True)
    queue_name: Mapped[str] = mapped_column(String(100))
    actor_name: Mapped[str] = mapped_column(String(100))
    kwargs: Mapped[dict[str, Any]]
    available_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None]
    send_attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    coalesce_key: Mapped[str | None] = mapped_column(String(100))


class DeadLetter(Base):
    """A job (or a raw Dramatiq message) that failed in a way a person should look at.

    It keeps what an on-call engineer needs without reading logs: who, which route,
    why, since when, and every attempt, with secrets scrubbed.
    """

    __tablename__ = "dead_letters"
    __table_args__ = (
        Index(None, "status", "last_failed_at"),
        Index(None, "job_id"),
        Index(None, "route"),
        Index(None, "tenant_id"),
        Index(None, "error_class"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    source: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(20), default="open")
    job_id: Mapped[str | None] = mapped_column(ForeignKey("jobs.id", ondelete="SET NULL"))
    tenant_id: Mapped[str | None] = mapped_column(String(40))
    route: Mapped[str | None] = mapped_column(String(100))
    model: Mapped[str | None] = mapped_column(String(200))
    queue_name: Mapped[str | None] = mapped_column(String(100))
    actor_name: Mapped[str | None] = mapped_column(String(100))
    error_class: Mapped[str] = mapped_column(String(50))
    error_message: Mapped[str] = mapped_column(Text)
    attempts: Mapped[list[dict[str, Any]]] = mapped_column(JSONDoc, default=list)
    message: Mapped[dict[str, Any] | None]
    first_failed_at: Mapped[datetime]
    last_failed_at: Mapped[datetime]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    resolved_at: Mapped[datetime | None]


class AuditEntry(Base):
    """Who did what to which dead letters, when, and with which filter."""

    __tablename__ = "audit_log"
    __table_args__ = (Index(None, "at"),)

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(50))
    filter: Mapped[dict[str, Any] | None]
    targets: Mapped[list[str]] = mapped_column(JSONDoc, default=list)
    count: Mapped[int] = mapped_column(Integer, default=0)
    dry_run: Mapped[bool] = mapped_column(default=False)
    at: Mapped[datetime] = mapped_column(default=utcnow)


class AdminKey(Base):
    """An operator key for the admin API, stored as a digest; its name is who acted."""

    __tablename__ = "admin_keys"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(20), default="operator", server_default="operator")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None]
