"""The /v1 jobs and usage API: submit, read and cancel a tenant's jobs, and its usage."""

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request, Response

from producers.app_state import producer_of
from producers.auth import Tenant
from producers.door import CheckedRoute
from producers.errors import ApiError, documented
from schema.clean import Moment
from schema.errors import FieldError, InvalidInputError
from schema.jobs import BatchCreate, BatchView, JobCreate, JobPage, JobStatus, JobView
from schema.settings import Settings
from schema.tables import utcnow
from schema.usage import GroupBy, UsageReport
from store.cursors import InvalidCursorError
from store.job_interventions import JobNotCancelableError
from store.submissions import IdempotencyConflictError

IdempotencyKey = Annotated[str | None, Header(min_length=1, max_length=255)]


def router(settings: Settings) -> APIRouter:
    """The routes, built per app because the largest page of jobs is a setting."""
    api = APIRouter(prefix="/v1", route_class=CheckedRoute)

    @api.post(
        "/jobs",
        status_code=202,
        response_model=JobView,
        tags=["jobs"],
        responses=documented(402, 409, 429),
    )
    def create_job(
        body: JobCreate,
        tenant_id: Tenant,
        request: Request,
        idempotency_key: IdempotencyKey = None,
    ) -> Response:
        """Queue one job and return it at once. Replays of an Idempotency-Key return the
        first job; the same key with another body is a 409."""
        try:
            job, replayed = producer_of(request).submit(tenant_id, body, idempotency_key)
        except IdempotencyConflictError as exc:
            raise ApiError(409, "idempotency_conflict", str(exc)) from exc
        # Encoded here, once: the view was just built from the stored job, and FastAPI
        # would validate it again on a second trip to the thread pool.
        headers = {"Idempotent-Replayed": "true"} if replayed else None
        return Response(job.model_dump_json(), 202, headers, media_type="application/json")

    @api.post(
        "/jobs/batch",
        status_code=202,
        response_model=BatchView,
        tags=["jobs"],
        responses=documented(402, 409, 429),
    )
    def create_batch(body: BatchCreate, tenant_id: Tenant, request: Request) -> BatchView:
        """Queue several jobs in one transaction: all of them, or none."""
        try:
            return BatchView(data=producer_of(request).submit_batch(tenant_id, body.jobs))
        except IdempotencyConflictError as exc:
            raise ApiError(409, "idempotency_conflict", str(exc)) from exc

    @api.get("/jobs", response_model=JobPage, tags=["jobs"])
    def list_jobs(
        tenant_id: Tenant,
        request: Request,
        status: JobStatus | None = None,
        limit: Annotated[int, Query(ge=1, le=settings.page_max)] = 20,
        cursor: Annotated[str | None, Query(max_length=500)] = None,
    ) -> JobPage:
        """The tenant's own jobs, newest first."""
        try:
            data, next_cursor = producer_of(request).list_jobs(
                tenant_id, status=status, limit=limit, cursor=cursor
            )
        except InvalidCursorError as exc:
            raise InvalidInputError([FieldError(("cursor",), str(exc))]) from exc
        return JobPage(data=data, next_cursor=next_cursor)

    @api.get("/jobs/{job_id}", response_model=JobView, tags=["jobs"])
    def get_job(job_id: str, tenant_id: Tenant, request: Request) -> JobView:
        job = producer_of(request).get(tenant_id, job_id)
        if job is None:
            raise _not_found(job_id)
        return job

    @api.post(
        "/jobs/{job_id}/cancel", response_model=JobView, tags=["jobs"], responses=documented(409)
    )
    def cancel_job(job_id: str, tenant_id: Tenant, request: Request) -> JobView:
        """Cancel a job that has not finished; 409 if it already has."""
        try:
            job = producer_of(request).cancel(tenant_id, job_id)
        except JobNotCancelableError as exc:
            raise ApiError(409, "not_cancelable", str(exc)) from exc
        if job is None:
            raise _not_found(job_id)
        return job

    @api.get("/usage", response_model=UsageReport, response_model_by_alias=True, tags=["usage"])
    def get_usage(
        tenant_id: Tenant,
        request: Request,
        start: Annotated[Moment | None, Query(alias="from")] = None,
        end: Annotated[Moment | None, Query(alias="to")] = None,
        group_by: GroupBy = GroupBy.MODEL,
    ) -> UsageReport:
        """Usage and cost between ``from`` (default: start of this month) and ``to``
        (default: now), by model or by UTC day, with the tenant's budget."""
        now = utcnow()
        start = _aware(start) if start else now.replace(day=1, hour=0, minute=0, second=0)
        end = _aware(end) if end else now
        if start >= end:
            raise InvalidInputError([FieldError(("from",), "'from' must be before 'to'")])
        return producer_of(request).usage(tenant_id, start, end, group_by)

    return api


def _not_found(job_id: str) -> ApiError:
    return ApiError(404, "not_found", f"no job {job_id!r}")


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
