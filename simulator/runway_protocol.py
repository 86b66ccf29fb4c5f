"""Runway's wire conventions: Bearer keys, a dated ``X-Runway-Version`` header on every
request, and ``{"error": ...}`` bodies (``issues`` added when a body fails validation).

Checked against the official ``runwayml`` SDK (5.x): its client sends
``Authorization: Bearer <key>`` and ``X-Runway-Version: 2024-11-06``; Runway's error
matrix lists 400 (``error`` member), 401, 404, 405, 429, 502, 503 and 504.
"""

import math
from collections.abc import Callable, Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from simulator.config import SimConfig
from simulator.protocol import Endpoint, Protocol, ProtocolError, reason, retry_after
from simulator.ratelimit import Quota, TokenBucket

API_VERSIONS = frozenset({"2024-11-06"})
DOC_URL = "https://docs.dev.runwayml.com/api"


class RunwayError(ProtocolError):
    """An error answered with Runway's JSON body, at least `{"error": message}`."""

    def __init__(
        self, status_code: int, body: dict[str, Any], headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(body.get("error"))
        self.status_code = status_code
        self.body = body
        self.headers = dict(headers or {})

    def response(self, request_id: str = "") -> JSONResponse:
        """The HTTP answer Runway gives for this error."""
        return JSONResponse(self.body, status_code=self.status_code, headers=self.headers)


def error(status_code: int, message: str) -> RunwayError:
    return RunwayError(status_code, {"error": message})


def invalid_body(issues: list[dict[str, Any]]) -> RunwayError:
    """The 400 of a body that fails Runway's (zod) schema, one issue per problem."""
    body = {"error": "Validation of body failed", "issues": issues, "docUrl": DOC_URL}
    return RunwayError(400, body)


def issue(path: list[str | int], code: str, message: str, **extra: Any) -> dict[str, Any]:
    """One validation issue as zod reports it."""
    return {**extra, "code": code, "path": path, "message": message}


class RunwayProtocol(Protocol):
    """Bearer auth, a required API version, and a requests-per-minute limit; no request ids."""

    family = "runway"

    def authenticate(self, request: Request, expected: str | None) -> str:
        """The key, once the request also names an API version Runway serves."""
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token or (expected is not None and token != expected):
            raise error(401, "Incorrect API key provided.")
        version = request.headers.get("x-runway-version")
        if version is None:
            raise error(400, "You must provide an API version in the X-Runway-Version header.")
        if version not in API_VERSIONS:
            raise error(400, f"Invalid API version: {version}.")
        return token

    def limits(self, config: SimConfig) -> dict[str, int]:
        return {"requests": config.rpm_limit}

    async def rate_limited(
        self, request: Request, dimension: str, bucket: TokenBucket, amount: int, wait: float
    ) -> RunwayError:
        refused = error(429, "You have exceeded the rate limit. Please slow down your requests.")
        refused.headers["retry-after"] = retry_after(math.ceil(wait))
        return refused

    def server_error(self, status_code: int) -> RunwayError:
        return error(status_code, reason(status_code))

    def new_request_id(self) -> str:
        return ""

    def headers(self, request_id: str, quota: Quota | None, elapsed: float) -> dict[str, str]:
        return {}


RUNWAY = RunwayProtocol()


def runway_endpoint(name: str) -> Callable[[Endpoint], Endpoint]:
    """Give an endpoint what every Runway answer has in common; see `Protocol.endpoint`."""
    return RUNWAY.endpoint(name)
