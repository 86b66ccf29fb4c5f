"""The API's door: what a request carries is checked before any route reads it.

``CheckedRoute`` (the ``route_class`` of every router that reads input) refuses, with the
field named: a path id that could not be stored (404, as for any unknown id), a query
parameter or a read header that holds NUL or a lone surrogate (422), and a JSON body that
is not plain JSON (422): ``NaN`` or ``Infinity``, integers beyond 64 bits, nesting deeper
than ``schema.clean.MAX_DEPTH``, or any key or string that could not be stored or sent.
The body is parsed once here; the route gets the parsed value.
"""

import json
import math
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute

from producers.errors import ApiError, documented
from schema.clean import json_problems, text_problem
from schema.errors import FieldError

READ_HEADERS = ("authorization", "idempotency-key")
Handler = Callable[[Request], Coroutine[Any, Any, Response]]


class CheckedRoute(APIRoute):
    """An ``APIRoute`` whose requests pass ``check_request`` before the route runs, and
    whose OpenAPI lists the errors every such route can give (401, 422, 503; 404 with a
    path id, 413 with a body) beside those it declares itself."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        super().__init__(path, endpoint, **kwargs)
        statuses = [401, 422, 503]
        statuses += [404] if self.dependant.path_params else []
        statuses += [413] if self.body_field is not None else []
        self.responses = documented(*statuses) | self.responses

    def get_route_handler(self) -> Handler:
        handler = super().get_route_handler()

        async def checked(request: Request) -> Response:
            await check_request(request)
            return await handler(request)

        return checked


async def check_request(request: Request) -> None:
    """Raise ``ApiError`` (404) or ``RequestValidationError`` (422) for unusable input."""
    for name, value in request.path_params.items():
        problem = text_problem(str(value))
        if problem is not None:
            raise ApiError(
                404,
                "not_found",
                f"no such {name}: an id {problem}",
                errors=[FieldError((name,), f"an id {problem}")],
            )
    errors = [
        _error(("query", name), problem)
        for name, value in request.query_params.multi_items()
        if (problem := text_problem(name) or text_problem(value))
    ]
    errors += [
        _error(("header", name), problem)
        for name in READ_HEADERS
        if (problem := text_problem(request.headers.get(name, "")))
    ]
    if errors:
        raise RequestValidationError(errors)
    body = await request.body()
    if body and _is_json(request.headers.get("content-type")):
        request._json = parse_body(body)


def parse_body(body: bytes) -> Any:
    """The JSON value of ``body``; ``RequestValidationError`` naming each field that is
    not plain, storable JSON."""
    try:
        value = json.loads(body, parse_constant=_no_constant, parse_float=_finite)
    except RecursionError:
        raise RequestValidationError([_error(("body",), "body nests too deeply")]) from None
    except ValueError as exc:
        message = str(exc) if isinstance(exc, _NotJson) else "body is not valid JSON"
        raise RequestValidationError([_error(("body",), message)]) from None
    problems = json_problems(value)
    if problems:
        raise RequestValidationError(
            [_error(("body", *problem.loc), problem.message) for problem in problems]
        )
    return value


class _NotJson(ValueError):
    """A number JSON does not have, met while parsing."""


def _no_constant(name: str) -> Any:
    raise _NotJson(f"body is not valid JSON: {name} is not a JSON number")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _NotJson(f"body is not valid JSON: {text[:20]} is out of range for a number")
    return value


def _is_json(content_type: str | None) -> bool:
    if content_type is None:
        return True
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


def _error(loc: tuple[str | int, ...], message: str) -> dict[str, Any]:
    return {"type": "value_error", "loc": loc, "msg": message}
