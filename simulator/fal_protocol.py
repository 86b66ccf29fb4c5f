"""fal's wire conventions: `Authorization: Key ...` and `{"detail": ...}` error bodies.

Model validation errors are 422 with a list of `{"loc", "msg", "type"}`; request errors
are a string `detail` with a machine-readable `error_type`, repeated in the
`X-Fal-Error-Type` header.
"""

import math
from collections.abc import Callable, Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from simulator.config import SimConfig
from simulator.protocol import Endpoint, Protocol, ProtocolError, reason, retry_after
from simulator.ratelimit import Quota, TokenBucket

ERROR_TYPES = {503: "runner_scheduling_failure", 504: "request_timeout"}


class FalError(ProtocolError):
    """An error answered with fal's JSON body, `{"detail": ...}`."""

    def __init__(
        self,
        status_code: int,
        detail: Any,
        error_type: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status_code = status_code
        self.body: dict[str, Any] = {"detail": detail}
        self.headers = dict(headers or {})
        if error_type is not None:
            self.body["error_type"] = error_type
            self.headers["x-fal-error-type"] = error_type

    def response(self, request_id: str = "") -> JSONResponse:
        """The HTTP answer fal gives for this error."""
        return JSONResponse(self.body, status_code=self.status_code, headers=self.headers)


def validation_error(loc: list[str], msg: str, kind: str) -> FalError:
    """A 422 naming one invalid input field, as fal's model apps answer it."""
    return FalError(422, [{"loc": loc, "msg": msg, "type": kind}])


def not_found(request_id: str) -> FalError:
    """A 404 for a request id the queue does not know."""
    return FalError(404, f"Request {request_id} not found")


class FalProtocol(Protocol):
    """Key auth and a requests-per-minute limit per key."""

    family = "fal"

    def authenticate(self, request: Request, expected: str | None) -> str:
        scheme, _, key = request.headers.get("authorization", "").partition(" ")
        key = key.strip()
        if scheme.lower() != "key" or not key:
            raise FalError(401, "No authentication credentials were provided (use 'Key <key>').")
        if expected is not None and key != expected:
            raise FalError(401, "Invalid API key.")
        return key

    def limits(self, config: SimConfig) -> dict[str, int]:
        return {"requests": config.rpm_limit}

    async def rate_limited(
        self, request: Request, dimension: str, bucket: TokenBucket, amount: int, wait: float
    ) -> FalError:
        detail = f"Rate limit exceeded. Try again in {math.ceil(wait)} seconds."
        return FalError(429, detail, headers={"retry-after": retry_after(wait)})

    def server_error(self, status_code: int) -> FalError:
        return FalError(status_code, reason(status_code), ERROR_TYPES.get(status_code))

    def new_request_id(self) -> str:
        return ""

    def headers(self, request_id: str, quota: Quota | None, elapsed: float) -> dict[str, str]:
        return {}


FAL = FalProtocol()


def fal_endpoint(name: str) -> Callable[[Endpoint], Endpoint]:
    """Give an endpoint what every fal queue answer has in common; see `Protocol.endpoint`."""
    return FAL.endpoint(name)
