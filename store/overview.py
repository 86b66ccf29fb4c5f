"""What the on-call engineer sees first: per route, jobs by status over the last hour and
day, throughput and error rate over time, and the webhook endpoints that are failing."""

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Integer, case, cast, func, select
from sqlalchemy.orm import Session

from schema.tables import Job, WebhookEndpoint, utcnow

FAILED_STATUSES = ("failed", "dead_lettered")
UNIX_EPOCH_JULIAN = 2440587.5


@dataclass
class RouteActivity:
    """One route's jobs created in the window, by status, and per-bucket series."""

    route: str
    by_status: dict[str, int] = field(default_factory=dict)
    finished: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)

    @property
    def error_rate(self) -> list[float]:
        return [f / n if n else 0.0 for f, n in zip(self.failed, self.finished, strict=True)]


@dataclass(frozen=True)
class FailingEndpoint:
    id: str
    tenant_id: str
    url: str
    description: str
    enabled: bool
    failing_since: datetime | None
    disabled_reason: str | None


def activity(
    session: Session, window: timedelta, buckets: int = 12, now: datetime | None = None
) -> list[RouteActivity]:
    """Jobs created in the last ``window`` per route by status, and jobs finished and
    failed in each of ``buckets`` equal slices of it (oldest first)."""
    now = now or utcnow()
    start = now - window
    routes: dict[str, RouteActivity] = {}

    def of(route: str) -> RouteActivity:
        return routes.setdefault(route, RouteActivity(route, {}, [0] * buckets, [0] * buckets))

    counted = session.execute(
        select(Job.route, Job.status, func.count())
        .where(Job.created_at >= start)
        .group_by(Job.route, Job.status)
    )
    for route, status, count in counted:
        of(route).by_status[status] = count
    slot = _slot(session, start, window.total_seconds() / buckets)
    failed = func.sum(case((Job.status.in_(FAILED_STATUSES), 1), else_=0))
    ended = session.execute(
        select(Job.route, slot, func.count(), failed)
        .where(Job.finished_at >= start)
        .group_by(Job.route, slot)
    )
    for route, at, count, failures in ended:
        at = min(buckets - 1, max(0, int(at)))
        of(route).finished[at] += count
        of(route).failed[at] += failures or 0
    return [routes[name] for name in sorted(routes)]


def _slot(session: Session, start: datetime, width_s: float) -> ColumnElement[Any]:
    """Which ``width_s``-wide slice after ``start`` a job finished in, counted in SQL."""
    if session.get_bind().dialect.name == "postgresql":
        elapsed = func.extract("epoch", Job.finished_at) - start.timestamp()
        return func.floor(elapsed / width_s)
    elapsed = (func.julianday(Job.finished_at) - UNIX_EPOCH_JULIAN) * 86400 - start.timestamp()
    return cast(elapsed / width_s, Integer)


def failing_endpoints(session: Session, limit: int = 20) -> list[FailingEndpoint]:
    """Webhook endpoints failing now or disabled, longest-failing first."""
    found = session.scalars(
        select(WebhookEndpoint)
        .where(WebhookEndpoint.failing_since.is_not(None) | WebhookEndpoint.enabled.is_(False))
        .order_by(WebhookEndpoint.failing_since.asc().nulls_last())
        .limit(limit)
    )
    return [
        FailingEndpoint(
            e.id, e.tenant_id, e.url, e.description, e.enabled, e.failing_since, e.disabled_reason
        )
        for e in found
    ]
