"""Anthropic's wire conventions: x-api-key auth, error bodies and anthropic-ratelimit-* headers."""

import math
import secrets
import string
import time
from collections.abc import Callable, Mapping

from starlette.requests import Request
from starlette.responses import JSONResponse

from simulator.config import SimConfig
from simulator.protocol import Endpoint, Protocol, ProtocolError, reason, retry_after
from simulator.ratelimit import Quota, TokenBucket

ORGANIZATION = "org-sim"
ID_ALPHABET = string.ascii_letters + string.digits
LIMITED = {"requests": "requests", "input-tokens": "input tokens", "output-tokens": "output tokens"}
"""Rate-limit dimension to how Anthropic's 429 message names it."""
SERVER_ERRORS = {
    400: ("invalid_request_error", "Invalid request."),
    401: ("authentication_error", "invalid x-api-key"),
    403: (
        "permission_error",
        "Your API key does not have permission to use the specified resource.",
    ),
    404: ("not_found_error", "The requested resource could not be found."),
    413: ("request_too_large", "Request exceeds the maximum allowed number of bytes."),
    429: ("rate_limit_error", "Rate limited. Please try again later."),
    500: ("api_error", "Internal server error"),
    504: ("timeout_error", "Request timeout"),
    529: ("overloaded_error", "Overloaded"),
}
"""Status code to the (type, message) Anthropic answers it with."""


class AnthropicError(ProtocolError):
    """An error answered in Anthropic's shape, `{"type": "error", "error": {type, message}}`."""

    def __init__(
        self,
        status_code: int,
        error_type: str,
        message: str,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.error_type = error_type
        self.message = message
        self.headers = dict(headers or {})

    def response(self, request_id: str = "") -> JSONResponse:
        """The HTTP answer Anthropic gives for this error, echoing the request id."""
        body = {
            "type": "error",
            "error": {"type": self.error_type, "message": self.message},
            "request_id": request_id,
        }
        return JSONResponse(body, status_code=self.status_code, headers=self.headers)


def invalid_request(message: str) -> AnthropicError:
    """A 400 invalid_request_error."""
    return AnthropicError(400, "invalid_request_error", message)


def rfc3339(timestamp: float) -> str:
    """A Unix time as Anthropic's reset headers write it, rounded up to the second."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(math.ceil(timestamp)))


def rate_limit_headers(quota: Quota) -> dict[str, str]:
    """The anthropic-ratelimit-* headers: each bucket, and the tightest token one as "tokens"."""
    buckets = dict(quota.buckets)
    buckets["tokens"] = min(
        buckets["input-tokens"], buckets["output-tokens"], key=lambda bucket: bucket.remaining
    )
    headers = {}
    for dimension, bucket in buckets.items():
        prefix = f"anthropic-ratelimit-{dimension}"
        headers[f"{prefix}-limit"] = str(bucket.limit)
        headers[f"{prefix}-remaining"] = str(bucket.remaining)
        headers[f"{prefix}-reset"] = rfc3339(quota.now + bucket.reset_after())
    return headers


class AnthropicProtocol(Protocol):
    """API keys, a required anthropic-version, request ids, input and output token limits."""

    family = "anthropic"

    def authenticate(self, request: Request, expected: str | None) -> str:
        """The key from x-api-key or, as recent SDKs send it, from `Authorization: Bearer`."""
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        bearer = token.strip() if scheme.lower() == "bearer" else ""
        key = request.headers.get("x-api-key", "").strip() or bearer
        if not key:
            raise AnthropicError(401, "authentication_error", "x-api-key header is required")
        if expected is not None and key != expected:
            raise AnthropicError(401, "authentication_error", "invalid x-api-key")
        if not request.headers.get("anthropic-version"):
            raise invalid_request("anthropic-version: header is required")
        return key

    def limits(self, config: SimConfig) -> dict[str, int]:
        return {
            "requests": config.rpm_limit,
            "input-tokens": config.tpm_limit,
            "output-tokens": config.otpm_limit,
        }

    async def rate_limited(
        self, request: Request, dimension: str, bucket: TokenBucket, amount: int, wait: float
    ) -> AnthropicError:
        message = (
            f"This request would exceed the rate limit for your organization ({ORGANIZATION}) "
            f"of {bucket.limit:,} {LIMITED[dimension]} per minute. "
            "For details, refer to: https://docs.claude.com/en/api/rate-limits. "
            "You can see the response headers for current usage. Please reduce the prompt "
            "length or the maximum tokens requested, or try again later."
        )
        headers = {} if math.isinf(wait) else {"retry-after": retry_after(wait)}
        return AnthropicError(429, "rate_limit_error", message, headers)

    def server_error(self, status_code: int) -> AnthropicError:
        error_type, message = SERVER_ERRORS.get(status_code, ("api_error", reason(status_code)))
        return AnthropicError(status_code, error_type, message)

    def new_request_id(self) -> str:
        return "req_" + "".join(secrets.choice(ID_ALPHABET) for _ in range(24))

    def headers(self, request_id: str, quota: Quota | None, elapsed: float) -> dict[str, str]:
        headers = {"request-id": request_id}
        return headers | rate_limit_headers(quota) if quota else headers


ANTHROPIC = AnthropicProtocol()


def anthropic_endpoint(name: str) -> Callable[[Endpoint], Endpoint]:
    """Give an endpoint what every Anthropic answer has in common; see `Protocol.endpoint`."""
    return ANTHROPIC.endpoint(name)
