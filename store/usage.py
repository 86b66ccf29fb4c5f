"""Usage and cost summed from attempt rows, grouped by model or by day."""

from datetime import datetime

from sqlalchemy import Integer, String, case, cast, distinct, func, select
from sqlalchemy.orm import Session

from schema.pricing import usd
from schema.tables import Job, JobAttempt, Tenant
from schema.usage import BudgetView, GroupBy, UsageReport, UsageRow
from store import budgets


def report(
    session: Session, tenant_id: str | None, start: datetime, end: datetime, group_by: GroupBy
) -> UsageReport:
    """Usage of one tenant (or all, for an operator) between ``start`` and ``end``."""
    key = JobAttempt.model if group_by == GroupBy.MODEL else func.date(JobAttempt.finished_at)
    query = (
        select(
            cast(key, String).label("key"),
            func.count().label("attempts"),
            func.count(distinct(JobAttempt.job_id)).label("jobs"),
            func.sum(case((JobAttempt.status == "cached", 1), else_=0)).label("cache_hits"),
            func.sum(JobAttempt.input_tokens).label("input_tokens"),
            func.sum(JobAttempt.output_tokens).label("output_tokens"),
            func.sum(cast(JobAttempt.images, Integer)).label("images"),
            func.sum(JobAttempt.video_seconds).label("video_seconds"),
            func.sum(JobAttempt.cost_micros).label("cost_micros"),
            func.sum(case((JobAttempt.cost_estimated, JobAttempt.cost_micros), else_=0)).label(
                "estimated_micros"
            ),
        )
        .join(Job, Job.id == JobAttempt.job_id)
        .where(JobAttempt.finished_at >= start, JobAttempt.finished_at < end)
        .group_by(cast(key, String))
        .order_by(cast(key, String))
    )
    if tenant_id is not None:
        query = query.where(Job.tenant_id == tenant_id)
    rows = [_row(r._mapping) for r in session.execute(query)]
    budget = None
    if tenant_id is not None:
        budget = _budget(budgets.state(session, session.get_one(Tenant, tenant_id)))
    return UsageReport(
        start=start, end=end, group_by=group_by, data=rows, total=_sum(rows), budget=budget
    )


def _row(values) -> UsageRow:  # type: ignore[no-untyped-def]
    return UsageRow(
        key=str(values["key"]),
        attempts=values["attempts"],
        jobs=values["jobs"],
        cache_hits=values["cache_hits"] or 0,
        input_tokens=values["input_tokens"] or 0,
        output_tokens=values["output_tokens"] or 0,
        images=values["images"] or 0,
        video_seconds=float(values["video_seconds"] or 0),
        cost_usd=usd(values["cost_micros"] or 0),
        estimated_cost_usd=usd(values["estimated_micros"] or 0),
    )


def _sum(rows: list[UsageRow]) -> UsageRow:
    return UsageRow(
        key="total",
        attempts=sum(r.attempts for r in rows),
        jobs=sum(r.jobs for r in rows),
        cache_hits=sum(r.cache_hits for r in rows),
        input_tokens=sum(r.input_tokens for r in rows),
        output_tokens=sum(r.output_tokens for r in rows),
        images=sum(r.images for r in rows),
        video_seconds=sum(r.video_seconds for r in rows),
        cost_usd=round(sum(r.cost_usd for r in rows), 6),
        estimated_cost_usd=round(sum(r.estimated_cost_usd for r in rows), 6),
    )


def _budget(state: budgets.BudgetState) -> BudgetView:
    return BudgetView(
        limit_usd=usd(state.limit_micros) if state.limit_micros is not None else None,
        spent_usd=usd(state.spent_micros),
        reserved_usd=usd(state.reserved_micros),
        period=state.period,
        period_start=state.period_start,
        resets_at=state.resets_at,
    )
