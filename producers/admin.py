"""The admin HTTP API for the on-call engineer: dead letters and the audit log.

It takes admin keys only (``genq admin keys create NAME``); tenant keys get 401 here, as
admin keys do on /v1. The key's name is the actor in the audit log; a ``viewer`` key reads
and gets 403 on every endpoint that changes something. An action on every
letter matching a filter must say ``"confirm": true`` unless it is a dry run.
"""

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

import redis
from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.exceptions import RequestValidationError
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from producers.app_state import producer_of
from producers.auth import bearer
from producers.door import CheckedRoute
from producers.errors import ApiError, documented
from producers.producer import Producer
from schema.deadletters import (
    ActionResult,
    AuditView,
    Bucket,
    DLQFilter,
    DLQStats,
    LetterView,
    Target,
    parse_since,
)
from store import dlq
from store.admin_keys import AdminIdentity, identify_admin
from store.cursors import InvalidCursorError
from store.dramatiq_dlq import import_dramatiq_dead_letters

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/admin", tags=["admin"], route_class=CheckedRoute)


def _identity(
    request: Request, authorization: Annotated[str | None, Header()] = None
) -> AdminIdentity:
    return bearer(request, authorization, identify_admin, "admin key")


def _admin(identity: Annotated[AdminIdentity, Depends(_identity)]) -> str:
    return identity.actor


def _operator(identity: Annotated[AdminIdentity, Depends(_identity)]) -> str:
    if not identity.can_act:
        raise ApiError(403, "forbidden", f"admin key {identity.name!r} is a viewer: it reads only")
    return identity.actor


Actor = Annotated[str, Depends(_admin)]
OperatorActor = Annotated[str, Depends(_operator)]


class LetterPage(BaseModel):
    data: list[LetterView]
    next_cursor: str | None


class AuditPage(BaseModel):
    data: list[AuditView]


class Action(BaseModel):
    """The letters to act on: ``ids``, or every open letter matching ``filter``."""

    model_config = ConfigDict(extra="forbid")

    ids: list[Annotated[str, Field(min_length=1, max_length=40)]] | None = Field(
        None, min_length=1, max_length=1000
    )
    filter: DLQFilter | None = None
    dry_run: bool = False
    confirm: bool = Field(
        False, validate_default=True, description="Required to act on a filter, but a dry run."
    )

    @field_validator("confirm")
    @classmethod
    def _confirmed(cls, confirm: bool, info: ValidationInfo) -> bool:
        if info.data.get("filter") is not None and not (confirm or info.data.get("dry_run")):
            raise PydanticCustomError(
                "confirm",
                'acting on every letter a filter matches needs "confirm": true; '
                'see what it would do with "dry_run": true first',
            )
        return confirm

    @model_validator(mode="after")
    def _one_selection(self) -> "Action":
        if (self.ids is None) == (self.filter is None):
            raise PydanticCustomError("selection", "give either 'ids' or 'filter'")
        return self

    @property
    def target(self) -> Target:
        return self.filter if self.filter is not None else self.ids or []


def _invalid(loc: tuple[str, ...], message: str) -> RequestValidationError:
    """A 422 naming ``loc``, in the shape every other bad input gets."""
    return RequestValidationError([{"type": "value_error", "loc": loc, "msg": message}])


@contextmanager
def _as_api_errors(where: tuple[str, ...] = ()) -> Iterator[None]:
    """Unknown letters are 404; a selection that cannot select is 422 at ``where``."""
    try:
        yield
    except dlq.LetterNotFoundError as exc:
        raise ApiError(404, "not_found", str(exc)) from exc
    except dlq.SelectionError as exc:
        raise _invalid((*where, exc.field), str(exc)) from exc
    except InvalidCursorError as exc:
        raise _invalid(("cursor",), str(exc)) from exc


def import_dramatiq_letters(producer: Producer) -> None:
    """Bring Dramatiq's own dead letters in first; a Redis outage must not hide the rest."""
    try:
        import_dramatiq_dead_letters(producer.settings.broker, producer.redis, producer.sessions)
    except redis.RedisError as exc:
        logger.warning("admin: could not read Dramatiq's dead letters: %s", type(exc).__name__)


def _filter_loc(action: Action) -> tuple[str, ...]:
    return ("filter",) if action.filter is not None else ()


@router.get("/dead-letters", response_model=LetterPage)
def list_dead_letters(
    request: Request,
    actor: Actor,
    route: str | None = None,
    tenant: str | None = None,
    error_class: str | None = None,
    source: str | None = None,
    text: Annotated[str | None, Query(description="Found in the error message.")] = None,
    since: Annotated[str | None, Query(description="ISO time, or a duration ago: 2h, 3d.")] = None,
    status: str = "open",
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
) -> LetterPage:
    """Dead letters, most recent failure first; ``status=all`` for every status."""
    producer = producer_of(request)
    given = {
        "route": route,
        "tenant": tenant,
        "error_class": error_class,
        "source": source,
        "text": text,
        "since": since,
        "status": status,
    }
    try:
        letters = DLQFilter.model_validate(given)
    except ValidationError as exc:
        raise RequestValidationError(exc.errors()) from exc
    import_dramatiq_letters(producer)
    with producer.sessions() as session, _as_api_errors():
        data, next_cursor = dlq.list_letters(session, letters, limit, cursor)
    return LetterPage(data=data, next_cursor=next_cursor)


@router.get("/dead-letters/stats", response_model=DLQStats)
def dead_letter_stats(
    request: Request,
    actor: Actor,
    since: Annotated[str, Query(description="ISO time, or a duration ago: 2h, 3d.")] = "24h",
    bucket: Bucket = "hour",
) -> DLQStats:
    """Counts of letters that last failed since ``since``, by route, by error class and
    over time."""
    producer = producer_of(request)
    try:
        start = parse_since(since)
    except ValueError as exc:
        raise _invalid(("since",), str(exc)) from exc
    import_dramatiq_letters(producer)
    with producer.sessions() as session:
        return dlq.stats(session, start, bucket)


@router.get("/dead-letters/{letter_id}", response_model=LetterView)
def get_dead_letter(request: Request, letter_id: str, actor: Actor) -> LetterView:
    """One letter with its attempt history and message, secrets scrubbed."""
    with producer_of(request).sessions() as session:
        letter = dlq.get_letter(session, letter_id)
    if letter is None:
        raise ApiError(404, "not_found", f"no dead letter {letter_id!r}")
    return letter


@router.post("/dead-letters/requeue", response_model=ActionResult, responses=documented(403, 404))
def requeue_dead_letters(request: Request, action: Action, actor: OperatorActor) -> ActionResult:
    """Requeue letters: a job starts over from the model it asked for (its budget
    reservation is made again, past the tenant's limit if need be); a raw Dramatiq
    message is sent again. Letters already requeued are reported in ``skipped``."""
    producer = producer_of(request)
    with _as_api_errors(_filter_loc(action)):
        return dlq.requeue(
            producer.sessions,
            producer.broker,
            producer.routes,
            action.target,
            actor,
            dry_run=action.dry_run,
        )


@router.post("/dead-letters/purge", response_model=ActionResult, responses=documented(403, 404))
def purge_dead_letters(request: Request, action: Action, actor: OperatorActor) -> ActionResult:
    """Mark letters purged: they leave the open list but stay on record."""
    with producer_of(request).sessions.begin() as session, _as_api_errors(_filter_loc(action)):
        return dlq.purge(session, action.target, actor, dry_run=action.dry_run)


@router.get("/audit", response_model=AuditPage)
def audit_log(
    request: Request,
    actor: Actor,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    by: Annotated[str | None, Query(max_length=200, description="Part of the actor.")] = None,
    action: Annotated[str | None, Query(max_length=50, description="Part of the action.")] = None,
) -> AuditPage:
    """Who did what, newest first."""
    with producer_of(request).sessions() as session:
        return AuditPage(data=dlq.recent_audit(session, limit, actor=by, action=action))
