"""The admin API's routes and jobs: the same services the console and the CLI call.

Reading takes any admin key; pausing, resuming, closing a circuit and cancelling a job
take an operator's (a viewer's gets 403). Every action is audited under the key's name.
"""

from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from producers.admin import Actor, OperatorActor
from producers.app_state import producer_of
from producers.door import CheckedRoute
from producers.errors import ApiError, documented
from schema.deadletters import parse_since
from schema.errors import ConflictError, NotFoundError
from schema.jobs import JobStatus
from store import route_ops
from store.inspect import JobQuery, cancel_job, find_jobs, job_with_attempts

router = APIRouter(prefix="/admin", tags=["admin"], route_class=CheckedRoute)


@router.get("/routes")
def list_routes(request: Request, actor: Actor) -> dict[str, list[dict[str, Any]]]:
    """Every route: limits, current use, circuit, pause and fallback chains."""
    producer = producer_of(request)
    return {"data": [asdict(r) for r in route_ops.route_views(producer.routes, producer.redis)]}


@router.post("/routes/{name}/{action}", status_code=204, responses=documented(403, 404))
def act_on_route(request: Request, name: str, action: str, actor: OperatorActor) -> None:
    """``pause``, ``resume`` or ``close-circuit`` the route, audited."""
    producer = producer_of(request)
    chosen = route_ops.ACTIONS.get(action)
    if chosen is None:
        raise ApiError(404, "not_found", f"no route action {action!r}")
    try:
        chosen(producer.sessions, producer.redis, producer.routes, name, actor)
    except route_ops.UnknownRouteError as exc:
        raise ApiError(404, "not_found", str(exc)) from exc


@router.get("/jobs")
def search_jobs(
    request: Request,
    actor: Actor,
    tenant: Annotated[str | None, Query(max_length=200)] = None,
    status: JobStatus | None = None,
    model: Annotated[str | None, Query(max_length=200)] = None,
    since: Annotated[str | None, Query(description="ISO time, or a duration ago: 2h.")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> dict[str, list[dict[str, Any]]]:
    """Jobs across tenants, newest first."""
    try:
        start = parse_since(since) if since else None
    except ValueError as exc:
        raise ApiError(422, "invalid_request", str(exc)) from exc
    query = JobQuery(
        tenant=tenant, status=status.value if status else None, model=model, since=start
    )
    with producer_of(request).sessions() as session:
        return {"data": [asdict(j) for j in find_jobs(session, query, limit)]}


@router.get("/jobs/{job_id}", responses=documented(404))
def get_job(request: Request, job_id: str, actor: Actor) -> dict[str, Any]:
    """Any tenant's job with every attempt."""
    with producer_of(request).sessions() as session:
        job = job_with_attempts(session, job_id)
    if job is None:
        raise ApiError(404, "not_found", f"no job {job_id!r}")
    return job


@router.post("/jobs/{job_id}/cancel", status_code=204, responses=documented(403, 404, 409))
def cancel(request: Request, job_id: str, actor: OperatorActor) -> None:
    """Cancel any tenant's unfinished job, audited."""
    producer = producer_of(request)
    try:
        cancel_job(producer.sessions, producer.settings, producer.broker, job_id, actor)
    except NotFoundError as exc:
        raise ApiError(404, "not_found", str(exc)) from exc
    except ConflictError as exc:
        raise ApiError(409, "conflict", str(exc)) from exc
