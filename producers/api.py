"""The HTTP API (FastAPI): a thin layer over ``Producer``. OpenAPI is served at /docs."""

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated

from fastapi import FastAPI, Header, Query, Response
from fastapi.responses import JSONResponse

from infra.brokers import ping_broker
from infra.circuits import circuit_states
from infra.db import ping
from producers import admin, errors, metrics_api, webhooks_api
from producers.auth import Tenant
from producers.body_limit import BodySizeLimit
from producers.errors import ApiError
from producers.producer import Producer
from schema.errors import FieldError, InvalidInputError
from schema.jobs import BatchCreate, BatchView, JobCreate, JobPage, JobStatus, JobView
from schema.tables import utcnow
from schema.usage import GroupBy, UsageReport
from store.cursors import InvalidCursorError
from store.lifecycle import JobNotCancelableError
from store.submissions import IdempotencyConflictError


def create_app(producer: Producer) -> FastAPI:
    app = FastAPI(
        title="genq",
        version="0.1.0",
        summary="Queue AI generation jobs; get results by polling or signed webhooks.",
    )
    app.state.producer = producer
    app.state.store_metrics = metrics_api.store_registry(producer)
    app.add_middleware(BodySizeLimit, max_bytes=producer.settings.max_body_bytes)
    errors.install(app)
    _routes(app, producer)
    app.include_router(webhooks_api.router)
    app.include_router(metrics_api.router)
    app.include_router(admin.router)
    return app


IdempotencyKey = Annotated[str | None, Header(min_length=1, max_length=255)]


def _not_found(job_id: str) -> ApiError:
    return ApiError(404, "not_found", f"no job {job_id!r}")


def _routes(app: FastAPI, producer: Producer) -> None:
    @app.post("/v1/jobs", status_code=202, response_model=JobView, tags=["jobs"])
    def create_job(
        request: JobCreate,
        tenant_id: Tenant,
        response: Response,
        idempotency_key: IdempotencyKey = None,
    ) -> JobView:
        """Queue one job and return it at once. Replays of an Idempotency-Key return the
        first job; the same key with another body is a 409."""
        try:
            job, replayed = producer.submit(tenant_id, request, idempotency_key)
        except IdempotencyConflictError as exc:
            raise ApiError(409, "idempotency_conflict", str(exc)) from exc
        if replayed:
            response.headers["Idempotent-Replayed"] = "true"
        return job

    @app.post("/v1/jobs/batch", status_code=202, response_model=BatchView, tags=["jobs"])
    def create_batch(request: BatchCreate, tenant_id: Tenant) -> BatchView:
        """Queue several jobs in one transaction: all of them, or none."""
        try:
            return BatchView(data=producer.submit_batch(tenant_id, request.jobs))
        except IdempotencyConflictError as exc:
            raise ApiError(409, "idempotency_conflict", str(exc)) from exc

    @app.get("/v1/jobs", response_model=JobPage, tags=["jobs"])
    def list_jobs(
        tenant_id: Tenant,
        status: JobStatus | None = None,
        limit: Annotated[int, Query(ge=1, le=producer.settings.page_max)] = 20,
        cursor: Annotated[str | None, Query(max_length=500)] = None,
    ) -> JobPage:
        """The tenant's own jobs, newest first."""
        try:
            data, next_cursor = producer.list_jobs(
                tenant_id, status=status, limit=limit, cursor=cursor
            )
        except InvalidCursorError as exc:
            raise InvalidInputError([FieldError(("cursor",), str(exc))]) from exc
        return JobPage(data=data, next_cursor=next_cursor)

    @app.get("/v1/jobs/{job_id}", response_model=JobView, tags=["jobs"])
    def get_job(job_id: str, tenant_id: Tenant) -> JobView:
        job = producer.get(tenant_id, job_id)
        if job is None:
            raise _not_found(job_id)
        return job

    @app.post("/v1/jobs/{job_id}/cancel", response_model=JobView, tags=["jobs"])
    def cancel_job(job_id: str, tenant_id: Tenant) -> JobView:
        """Cancel a job that has not finished; 409 if it already has."""
        try:
            job = producer.cancel(tenant_id, job_id)
        except JobNotCancelableError as exc:
            raise ApiError(409, "not_cancelable", str(exc)) from exc
        if job is None:
            raise _not_found(job_id)
        return job

    @app.get("/v1/usage", response_model=UsageReport, response_model_by_alias=True, tags=["usage"])
    def get_usage(
        tenant_id: Tenant,
        start: Annotated[datetime | None, Query(alias="from")] = None,
        end: Annotated[datetime | None, Query(alias="to")] = None,
        group_by: GroupBy = GroupBy.MODEL,
    ) -> UsageReport:
        """Usage and cost between ``from`` (default: start of this month) and ``to``
        (default: now), by model or by UTC day, with the tenant's budget."""
        now = utcnow()
        start = _aware(start) if start else now.replace(day=1, hour=0, minute=0, second=0)
        end = _aware(end) if end else now
        if start >= end:
            raise InvalidInputError([FieldError(("from",), "'from' must be before 'to'")])
        return producer.usage(tenant_id, start, end, group_by)

    @app.get("/healthz", tags=["health"])
    def healthz() -> dict[str, str]:
        """The process is up."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"])
    def readyz() -> JSONResponse:
        """The database, the broker and Redis (limits, circuits, leases) answer; open
        circuits are reported, not fatal."""
        checks = {
            "database": _check(lambda: ping(producer.engine)),
            "broker": _check(lambda: ping_broker(producer.broker)),
            "redis": _check(producer.redis.ping),
        }
        ready = all(value == "ok" for value in checks.values())
        circuits = {}
        if checks["redis"] == "ok":
            states = circuit_states(producer.redis, list(producer.routes.by_name))
            circuits = {route: state for route, state in states.items() if state != "closed"}
        return JSONResponse(
            {"status": "ok" if ready else "unavailable", "checks": checks, "circuits": circuits},
            status_code=200 if ready else 503,
        )


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _check(probe: Callable[[], object]) -> str:
    try:
        probe()
    except Exception as exc:
        return f"error: {type(exc).__name__}"
    return "ok"
