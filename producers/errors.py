"""One JSON error shape for every failure: ``{"error": {"type", "message", "errors"?}}``.

No handler ever returns a stack trace, nor a secret (messages are scrubbed); a database
that cannot be reached is a 503 with Retry-After, so a producer knows to try again and
that nothing was stored.
"""

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.exceptions import HTTPException

from infra.scrub import scrub_value
from producers.enqueue_rate import EnqueueRateExceededError
from producers.webhook_test_rate import WebhookTestRateExceededError
from schema.errors import FieldError, GenqError, InvalidInputError
from schema.pricing import usd
from store.budgets import BudgetExceededError
from store.webhook_endpoints import EndpointLimitError

logger = logging.getLogger(__name__)

RETRY_AFTER_UNAVAILABLE_S = 5
ADJECTIVES = {"day": "daily", "week": "weekly", "month": "monthly"}


class FieldErrorView(BaseModel):
    field: str
    message: str


class ErrorDetail(BaseModel):
    type: str
    message: str
    errors: list[FieldErrorView] | None = None


class ErrorBody(BaseModel):
    """Every error the API answers, whatever its status."""

    error: ErrorDetail


STATUS_MEANINGS = {
    401: "A missing or unknown key.",
    403: "The admin key is a viewer's: it may read but not change anything.",
    402: "The job's maximum cost does not fit in what is left of the tenant's budget.",
    404: "No such id for this caller (an id that could not be stored is never found).",
    409: "Clashes with what exists: a reused Idempotency-Key, a finished job.",
    413: "The body is over GENQ_MAX_BODY_BYTES.",
    422: "A field is invalid; each one is named in errors.",
    429: "Over the tenant's enqueue rate; see Retry-After.",
    503: "The job store is unavailable; nothing was stored, see Retry-After.",
}


def documented(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for these error statuses, each with the one error body."""
    return {
        status: {"model": ErrorBody, "description": STATUS_MEANINGS[status]} for status in statuses
    }


class ApiError(GenqError):
    def __init__(
        self,
        status: int,
        type: str,
        message: str,
        headers: dict[str, str] | None = None,
        *,
        errors: list[FieldError] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.type = type
        self.message = message
        self.headers = headers
        self.errors = errors


def error_response(
    status: int,
    type: str,
    message: str,
    *,
    errors: list[dict[str, str]] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body: dict[str, object] = {"type": type, "message": message}
    if errors is not None:
        body["errors"] = errors
    return JSONResponse({"error": scrub_value(body)}, status_code=status, headers=headers)


def _field(loc: tuple[str | int, ...]) -> str:
    return ".".join(str(part) for part in loc) or "body"


def _listed(errors: list[FieldError]) -> list[dict[str, str]]:
    return [{"field": _field(e.loc), "message": e.message} for e in errors]


def field_errors_response(errors: list[FieldError]) -> JSONResponse:
    listed = _listed(errors)
    summary = "; ".join(f"{e['field']}: {e['message']}" for e in listed)
    return error_response(422, "invalid_request", summary, errors=listed)


def _validation(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = []
    for error in exc.errors():
        loc = tuple(error["loc"])
        if loc and loc[0] in ("body", "query", "path", "header"):
            loc = loc[1:]
        message = "body is not valid JSON" if error["type"] == "json_invalid" else error["msg"]
        errors.append(FieldError(loc, message))
    return field_errors_response(errors)


def _invalid_job(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, InvalidInputError)
    return field_errors_response(exc.errors)


def _api_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    listed = _listed(exc.errors) if exc.errors else None
    return error_response(exc.status, exc.type, exc.message, errors=listed, headers=exc.headers)


def _http(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    kind = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    return error_response(exc.status_code, kind, str(exc.detail), headers=exc.headers)


def _over_budget(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, BudgetExceededError)
    state = exc.state
    limit = usd(state.limit_micros or 0)
    left = usd(max(0, (state.limit_micros or 0) - state.spent_micros - state.reserved_micros))
    body = {
        "type": "budget_exceeded",
        "message": (
            f"this request may cost up to ${usd(exc.needed_micros):.6f}, and only ${left:.6f} "
            f"of the {ADJECTIVES[state.period]} budget of ${limit:.2f} is left; it resets at "
            f"{state.resets_at.isoformat()}"
        ),
        "budget_usd": limit,
        "spent_usd": usd(state.spent_micros),
        "reserved_usd": usd(state.reserved_micros),
        "needed_usd": usd(exc.needed_micros),
        "resets_at": state.resets_at.isoformat(),
    }
    return JSONResponse({"error": body}, status_code=402)


def _enqueue_rate(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, EnqueueRateExceededError)
    return error_response(
        429,
        "rate_limited",
        f"this tenant may enqueue {exc.limit} jobs per minute; retry in {exc.retry_after_s}s",
        headers={"Retry-After": str(exc.retry_after_s)},
    )


def _webhook_test_rate(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, WebhookTestRateExceededError)
    headers = {"Retry-After": str(exc.retry_after_s)}
    return error_response(429, "rate_limited", str(exc), headers=headers)


def _endpoint_limit(_: Request, exc: Exception) -> JSONResponse:
    """A 409, not a 429: waiting does not help, deleting an endpoint does."""
    assert isinstance(exc, EndpointLimitError)
    return error_response(409, "limit_exceeded", str(exc))


def _database_down(_: Request, exc: Exception) -> JSONResponse:
    logger.error("database unavailable: %s", type(exc).__name__)
    return error_response(
        503,
        "unavailable",
        "the job store is unavailable; nothing was stored, try again",
        headers={"Retry-After": str(RETRY_AFTER_UNAVAILABLE_S)},
    )


def _database_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DBAPIError)
    if exc.connection_invalidated:
        return _database_down(request, exc)
    return _unexpected(request, exc)


def _unexpected(_: Request, exc: Exception) -> JSONResponse:
    logger.exception("unhandled error", exc_info=exc)
    return error_response(500, "internal_error", "an internal error occurred")


def install(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(InvalidInputError, _invalid_job)
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(BudgetExceededError, _over_budget)
    app.add_exception_handler(EnqueueRateExceededError, _enqueue_rate)
    app.add_exception_handler(WebhookTestRateExceededError, _webhook_test_rate)
    app.add_exception_handler(EndpointLimitError, _endpoint_limit)
    app.add_exception_handler(HTTPException, _http)
    app.add_exception_handler(OperationalError, _database_down)  # also statement timeouts
    app.add_exception_handler(PoolTimeoutError, _database_down)  # every connection is stuck
    app.add_exception_handler(DBAPIError, _database_error)
    app.add_exception_handler(Exception, _unexpected)
