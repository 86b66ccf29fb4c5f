"""Jobs: find them by id, tenant, status, model and time; one job with its attempts,
events and webhook deliveries; cancel it."""

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from producers.app_state import producer_of
from producers.console.render import page
from producers.console.session import Operator, Viewer
from schema.deadletters import parse_since
from schema.errors import ConflictError, NotFoundError
from schema.jobs import JobStatus
from store.inspect import JobQuery, cancel_job, find_jobs, job_events, job_with_attempts
from store.webhook_deliveries import DeliveryFilter

router = APIRouter(prefix="/console/jobs")

FIELDS = ("job_id", "tenant", "status", "model", "since", "until")


@router.get("", response_class=HTMLResponse)
def jobs_view(request: Request, user: Viewer) -> HTMLResponse:
    """Jobs matching the search, newest first."""
    given = {k: (request.query_params.get(k) or "").strip()[:200] for k in FIELDS}
    problem = None
    try:
        query = JobQuery(
            job_id=given["job_id"] or None,
            tenant=given["tenant"] or None,
            status=JobStatus(given["status"]).value if given["status"] else None,
            model=given["model"] or None,
            since=parse_since(given["since"]) if given["since"] else None,
            until=parse_since(given["until"]) if given["until"] else None,
        )
    except ValueError as exc:
        query, problem = JobQuery(job_id="-"), str(exc)
    with producer_of(request).sessions() as session:
        found = find_jobs(session, query)
    return page(
        request,
        "jobs.html",
        user,
        given=given,
        jobs=found,
        statuses=[s.value for s in JobStatus],
        problem=problem,
    )


@router.get("/{job_id}", response_class=HTMLResponse)
def job_view(request: Request, user: Viewer, job_id: str) -> HTMLResponse:
    """One job: what it asked, where it is, its attempts, events and deliveries."""
    producer = producer_of(request)
    with producer.sessions() as session:
        job = job_with_attempts(session, job_id)
        events = job_events(session, job_id) if job else []
    deliveries, _ = producer.webhooks.deliveries(
        DeliveryFilter(job_id=job_id), limit=50, cursor=None
    )
    response = page(request, "job.html", user, job=job, events=events, deliveries=deliveries)
    if job is None:
        response.status_code = 404
    return response


@router.post("/{job_id}/cancel")
def cancel(request: Request, user: Operator, job_id: str) -> Response:
    """Cancel the job (audited), then show it again."""
    producer = producer_of(request)
    try:
        cancel_job(
            producer.sessions, producer.settings, producer.broker, job_id, user.identity.actor
        )
    except (ConflictError, NotFoundError) as exc:
        return page(request, "refused.html", user, message=str(exc))
    return RedirectResponse(f"/console/jobs/{job_id}", status_code=303)
