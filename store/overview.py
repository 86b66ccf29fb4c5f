"""What the on-call engineer sees first: per route, jobs by status over the last hour and
day, throughput and error rate over time, and the webhook endpoints that are failing."""

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from schema.tables import Job, WebhookEndpoint, utcnow

FAILED_STATUSES = ("failed", "dead_lettered")


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
    ended = session.execute(
        select(Job.route, Job.status, Job.finished_at).where(Job.finished_at >= start)
    )
    width = window / buckets
    for route, status, finished_at in ended:
        at = min(buckets - 1, int((finished_at - start) / width))
        of(route).finished[at] += 1
        if status in FAILED_STATUSES:
            of(route).failed[at] += 1
    return [routes[name] for name in sorted(routes)]


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
