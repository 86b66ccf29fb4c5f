"""Replicate's wire conventions: Bearer tokens and problem-details error bodies."""

import math
from collections.abc import Callable, Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from simulator.config import SimConfig
from simulator.protocol import Endpoint, Protocol, ProtocolError, reason, retry_after
from simulator.ratelimit import Quota, TokenBucket

INVALID_VERSION = (
    "The specified version does not exist (or perhaps you don't have permission to use it?)"
)


class ReplicateError(ProtocolError):
    """An error answered with Replicate's JSON body, usually `{"title", "detail", "status"}`."""

    def __init__(
        self, status_code: int, body: dict[str, Any], headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(body.get("detail"))
        self.status_code = status_code
        self.body = body
        self.headers = dict(headers or {})

    def response(self, request_id: str = "") -> JSONResponse:
        """The HTTP answer Replicate gives for this error."""
        return JSONResponse(self.body, status_code=self.status_code, headers=self.headers)


def problem(status_code: int, title: str, detail: str, **extra: Any) -> ReplicateError:
    """An error in the problem-details shape Replicate uses for most failures."""
    body = {"title": title, "detail": detail, "status": status_code, **extra}
    return ReplicateError(status_code, body)


def not_found() -> ReplicateError:
    """A 404 for an unknown prediction."""
    return ReplicateError(404, {"detail": "Not found."})


def invalid_fields(fields: list[dict[str, str]]) -> ReplicateError:
    """A 422 listing each invalid field as `{"type", "field", "description"}`."""
    detail = "".join(
        f"- {field['field'] or '(root)'}: {field['description']}\n" for field in fields
    )
    return problem(422, "Input validation failed", detail, invalid_fields=fields)


def invalid_version() -> ReplicateError:
    """A 422 for a version that is malformed or unknown."""
    return problem(422, "Invalid version or not permitted", INVALID_VERSION)


class ReplicateProtocol(Protocol):
    """Bearer (or legacy Token) auth and a requests-per-minute limit; no request ids."""

    family = "replicate"

    def authenticate(self, request: Request, expected: str | None) -> str:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        token = token.strip()
        if scheme.lower() not in ("bearer", "token") or not token:
            raise problem(401, "Unauthenticated", "You did not pass an authentication token")
        if expected is not None and token != expected:
            raise problem(401, "Unauthenticated", "You did not pass a valid authentication token")
        return token

    def limits(self, config: SimConfig) -> dict[str, int]:
        return {"requests": config.rpm_limit}

    async def rate_limited(
        self, request: Request, dimension: str, bucket: TokenBucket, amount: int, wait: float
    ) -> ReplicateError:
        seconds = math.ceil(wait)
        detail = f"Request was throttled. Expected available in {seconds} second"
        error = problem(429, "Request was throttled", detail + ("" if seconds == 1 else "s"))
        error.headers["retry-after"] = retry_after(wait)
        return error

    def server_error(self, status_code: int) -> ReplicateError:
        return problem(status_code, reason(status_code), "The server failed to handle the request.")

    def new_request_id(self) -> str:
        return ""

    def headers(self, request_id: str, quota: Quota | None, elapsed: float) -> dict[str, str]:
        return {}


REPLICATE = ReplicateProtocol()


def replicate_endpoint(name: str) -> Callable[[Endpoint], Endpoint]:
    """Give an endpoint what every Replicate answer has in common; see `Protocol.endpoint`."""
    return REPLICATE.endpoint(name)
