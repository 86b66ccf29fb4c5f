"""Dead letters: filter, count by group, select, dry run, then requeue or purge with
progress; and one letter with its job, error and attempt timeline."""

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse
from pydantic import ValidationError

from producers.admin import import_dramatiq_letters
from producers.app_state import producer_of
from producers.console import bulk
from producers.console.render import page
from producers.console.session import Operator, Viewer
from schema.deadletters import DLQFilter
from store import dlq
from store.inspect import job_with_attempts

router = APIRouter(prefix="/console/dead-letters")

FIELDS = ("route", "tenant", "error_class", "since", "text")
PAGE_SIZE = 100


def _filter(given: dict[str, str | None]) -> tuple[DLQFilter, str | None]:
    """The filter from the form's fields (blank ones left out), or why it is not one."""
    chosen = {k: v.strip() for k, v in given.items() if k in FIELDS and v and v.strip()}
    try:
        return DLQFilter.model_validate(chosen), None
    except ValidationError as exc:
        return DLQFilter(), "; ".join(str(e["msg"]) for e in exc.errors())


@router.get("", response_class=HTMLResponse)
def letters_view(request: Request, user: Viewer) -> HTMLResponse:
    """Open letters matching the filter, newest failure first, with counts by group."""
    producer = producer_of(request)
    given = {k: request.query_params.get(k) for k in FIELDS}
    letters, problem = _filter(given)
    found, more, groups = [], None, {}
    import_dramatiq_letters(producer)
    with producer.sessions() as session:
        try:
            if problem is None:
                found, more = dlq.list_letters(session, letters, PAGE_SIZE)
                groups = dlq.group_counts(session, letters)
        except dlq.SelectionError as exc:
            problem = str(exc)
    return page(
        request,
        "deadletters.html",
        user,
        given={k: v or "" for k, v in given.items()},
        letters=found,
        more=more is not None,
        groups=groups,
        problem=problem,
    )


@router.post("/dry-run", response_class=HTMLResponse)
async def dry_run(request: Request, user: Operator) -> HTMLResponse:
    """What an action would move: the chosen letters, or every one the filter matches."""
    producer = producer_of(request)
    form = await request.form()
    action: bulk.Action = "purge" if form.get("action") == "purge" else "requeue"
    ids = [str(i) for i in form.getlist("ids")]
    letters, problem = _filter({k: str(form.get(k) or "") for k in FIELDS})
    target = letters if form.get("scope") == "matching" else ids
    if problem is None and not target:
        problem = "Select some letters, or choose every letter matching the filter."
    if problem is not None:
        return page(request, "dlq_plan.html", user, problem=problem)
    actor = user.identity.actor
    try:
        if action == "requeue":
            result = dlq.requeue(
                producer.sessions, producer.broker, producer.routes, target, actor, dry_run=True
            )
        else:
            with producer.sessions.begin() as session:
                result = dlq.purge(session, target, actor, dry_run=True)
    except (dlq.SelectionError, dlq.LetterNotFoundError) as exc:
        return page(request, "dlq_plan.html", user, problem=str(exc))
    plan_id = bulk.plan(producer.redis, action, result.targets) if result.targets else None
    return page(request, "dlq_plan.html", user, result=result, plan_id=plan_id, problem=None)


@router.post("/act", response_class=HTMLResponse)
def act(
    request: Request, user: Operator, plan: Annotated[str, Form(max_length=64)]
) -> HTMLResponse:
    """Carry out a dry run's plan, on exactly the letters it showed."""
    started = bulk.start(producer_of(request), plan, user.identity.actor)
    return _progress(request, user, plan, None if started else "That plan expired or already ran.")


@router.get("/plans/{plan_id}", response_class=HTMLResponse)
def plan_progress(request: Request, user: Viewer, plan_id: str) -> HTMLResponse:
    """How far a bulk action has got (polled by the page until it is done)."""
    return _progress(request, user, plan_id, None)


def _progress(request: Request, user: Viewer, plan_id: str, problem: str | None) -> HTMLResponse:
    found = bulk.progress(producer_of(request).redis, plan_id[:64])
    return page(
        request, "dlq_progress.html", user, plan_id=plan_id, progress=found, problem=problem
    )


@router.get("/{letter_id}", response_class=HTMLResponse)
def letter_view(request: Request, user: Viewer, letter_id: str) -> HTMLResponse:
    """One letter: its job, its error and its attempt timeline, secrets scrubbed."""
    with producer_of(request).sessions() as session:
        letter = dlq.get_letter(session, letter_id)
        job = job_with_attempts(session, letter.job_id) if letter and letter.job_id else None
    response = page(request, "letter.html", user, letter=letter, job=job)
    if letter is None:
        response.status_code = 404
    return response
