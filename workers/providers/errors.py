"""One error taxonomy for every provider: retryable or permanent, with the provider's hints.

Retryable: connection errors, timeouts, 408, 409, 425, 429, 5xx and 529. Everything
else the provider refuses (400, 401, 403, 404, 413, 422, ...) is permanent: asking
again would get the same answer.
"""

import email.utils
import time
from typing import Any

import httpx

from infra.scrub import scrub
from schema.errors import AttemptError, ErrorClass

RETRYABLE_STATUSES = frozenset({408, 409, 425, 429})


_CLASS_OF_STATUS = {
    400: ErrorClass.BAD_REQUEST,
    401: ErrorClass.AUTH,
    403: ErrorClass.AUTH,
    404: ErrorClass.NOT_FOUND,
    408: ErrorClass.TIMEOUT,
    409: ErrorClass.CONFLICT,
    413: ErrorClass.TOO_LARGE,
    422: ErrorClass.BAD_REQUEST,
    425: ErrorClass.CONFLICT,
    429: ErrorClass.RATE_LIMITED,
    529: ErrorClass.OVERLOADED,
}


class ProviderError(AttemptError):
    """A provider call that did not produce a result. Its message is scrubbed of secrets;
    ``hints`` are the provider's status, request id and Retry-After."""

    def __init__(
        self, error_class: ErrorClass, message: str, *, retryable: bool, **hints: Any
    ) -> None:
        super().__init__(error_class, scrub(message), retryable=retryable, **hints)


def is_retryable_status(status: int) -> bool:
    return status in RETRYABLE_STATUSES or status >= 500


def class_of_status(status: int) -> ErrorClass:
    if status in _CLASS_OF_STATUS:
        return _CLASS_OF_STATUS[status]
    return ErrorClass.SERVER if status >= 500 else ErrorClass.BAD_REQUEST


def retry_after_s(headers: httpx.Headers) -> float | None:
    """Seconds to wait from ``retry-after-ms`` (OpenAI) or ``retry-after`` (seconds or date)."""
    if (millis := headers.get("retry-after-ms")) is not None:
        try:
            return max(0.0, float(millis) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value) if value.strip() else None
        return max(0.0, parsed.timestamp() - time.time()) if parsed else None


def _detail(response: httpx.Response) -> tuple[str | None, str | None]:
    """The provider's own message and error code, from OpenAI, Anthropic, Replicate or fal
    bodies."""
    try:
        body = response.json()
    except ValueError:
        return None, None
    if not isinstance(body, dict):
        return None, None
    error = body.get("error")
    if isinstance(error, dict):
        return error.get("message"), error.get("code") or error.get("type")
    detail = body.get("detail")
    if isinstance(detail, list):
        return _fal_validation(detail)
    return (str(detail) if detail else None), body.get("error_type")


def _fal_validation(detail: list[Any]) -> tuple[str, str | None]:
    """fal's 422 list of ``{"loc", "msg", "type"}``: each field and why, and the first type."""
    items = [item for item in detail if isinstance(item, dict)]
    message = "; ".join(
        f"{'.'.join(str(part) for part in item.get('loc') or [])}: {item.get('msg')}"
        for item in items
    )
    return message or str(detail), (items[0].get("type") if items else None)


def from_response(response: httpx.Response, request_id: str | None) -> ProviderError:
    """Map a non-2xx answer to the taxonomy, keeping the provider's own message."""
    status = response.status_code
    message, code = _detail(response)
    error_class = class_of_status(status)
    if code == "content_policy_violation":
        error_class = ErrorClass.CONTENT_POLICY
    return ProviderError(
        error_class,
        # Scrubbed before it is cut, so no part of a secret is left at the cut.
        f"HTTP {status}: {scrub(message or response.reason_phrase or 'no message')}"[:1000],
        retryable=is_retryable_status(status),
        http_status=status,
        retry_after_s=retry_after_s(response.headers),
        request_id=request_id,
    )


def from_transport(exc: httpx.TransportError) -> ProviderError:
    """Map a failure to reach the provider or to read its answer."""
    if isinstance(exc, httpx.TimeoutException):
        return ProviderError(ErrorClass.TIMEOUT, f"{type(exc).__name__}", retryable=True)
    return ProviderError(ErrorClass.CONNECT, f"{type(exc).__name__}: {exc}"[:500], retryable=True)
