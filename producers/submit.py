"""Checking submitted jobs before anything is written: a job that encodes, a known model,
an input of its protocol's shape, a webhook URL genq may call."""

import json
from collections.abc import Callable, Sequence

from pydantic import ValidationError

from infra.destinations import UnsafeDestinationError
from schema.errors import FieldError, InvalidInputError, Loc
from schema.inputs import validate_input
from schema.jobs import JobCreate
from schema.routes import Routes, UnknownModelError
from store.submissions import Submission


def sendable_problem(request: JobCreate) -> str | None:
    """Why a request that passed its model could still be stored but never shown or sent
    (one built without validation, say): a job's view and its webhook bodies carry the
    request's fields beside values genq makes, so those must encode as strict UTF-8 JSON."""
    try:
        body = request.model_dump(mode="json")
        json.dumps(body, allow_nan=False, ensure_ascii=False).encode()
    except (ValueError, TypeError) as exc:
        return f"the job cannot be encoded as JSON ({type(exc).__name__})"
    return None


def check(
    routes: Routes,
    submissions: Sequence[Submission],
    loc: Loc = (),
    vet_webhook_url: Callable[[str], object] | None = None,
) -> None:
    """Raise ``InvalidInputError`` naming every bad field, before anything is written.

    ``vet_webhook_url`` raises ``UnsafeDestinationError`` for a URL genq must not call.
    """
    errors: list[FieldError] = []
    for index, submission in enumerate(submissions):
        at = (*loc, index) if len(submissions) > 1 or loc else ()
        problem = sendable_problem(submission.request)
        if problem is not None:
            errors.append(FieldError(at or ("body",), problem))
            continue
        webhook_url = submission.request.webhook_url
        if webhook_url is not None and vet_webhook_url is not None:
            try:
                vet_webhook_url(str(webhook_url))
            except UnsafeDestinationError as exc:
                errors.append(FieldError((*at, "webhook_url"), str(exc)))
        try:
            route, _ = routes.resolve(submission.request.model)
        except UnknownModelError as exc:
            errors.append(FieldError((*at, "model"), str(exc)))
            continue
        try:
            validate_input(route.protocol, submission.request.input)
        except ValidationError as exc:
            errors.extend(
                FieldError((*at, "input", *error["loc"]), error["msg"]) for error in exc.errors()
            )
    if errors:
        raise InvalidInputError(errors)
