"""Google's wire conventions (Vertex AI in express mode): an API key in ``x-goog-api-key``
(or ``?key=``) and errors in Google's envelope, ``{"error": {code, message, status}}``.

Google names each error by its canonical status (``RESOURCE_EXHAUSTED`` for 429,
``UNAVAILABLE`` for 503, ...). A key Google does not know is a 400 ``INVALID_ARGUMENT``
with an ``ErrorInfo`` reason ``API_KEY_INVALID``, not a 401; a missing key is a 401.
Vertex sends no rate-limit headers and no Retry-After.
"""

from collections.abc import Callable, Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from simulator.config import SimConfig
from simulator.protocol import Endpoint, Protocol, ProtocolError
from simulator.ratelimit import Quota, TokenBucket

CANONICAL = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    501: "UNIMPLEMENTED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
"""HTTP status to the canonical status name Google's envelope carries."""
SERVER_MESSAGES = {
    500: "Internal error encountered.",
    503: "The service is currently unavailable.",
    504: "Deadline expired before operation could complete.",
}
UNREGISTERED = (
    "Method doesn't allow unregistered callers (callers without established identity)."
    " Please use API Key or other form of API consumer identity to call this API."
)
ERROR_INFO = "type.googleapis.com/google.rpc.ErrorInfo"


class GoogleError(ProtocolError):
    """An error answered in Google's envelope."""

    def __init__(
        self,
        status_code: int,
        message: str,
        details: list[dict[str, Any]] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.message = message
        self.details = details
        self.headers = dict(headers or {})

    def response(self, request_id: str = "") -> JSONResponse:
        """The HTTP answer Google gives for this error."""
        error: dict[str, Any] = {
            "code": self.status_code,
            "message": self.message,
            "status": CANONICAL.get(self.status_code, "UNKNOWN"),
        }
        if self.details:
            error["details"] = self.details
        return JSONResponse({"error": error}, status_code=self.status_code, headers=self.headers)


def invalid_argument(message: str) -> GoogleError:
    return GoogleError(400, message)


def not_found(message: str) -> GoogleError:
    return GoogleError(404, message)


def invalid_key() -> GoogleError:
    """What Google answers a key it does not know."""
    info = {
        "@type": ERROR_INFO,
        "reason": "API_KEY_INVALID",
        "domain": "googleapis.com",
        "metadata": {"service": "aiplatform.googleapis.com"},
    }
    return GoogleError(400, "API key not valid. Please pass a valid API key.", [info])


class GoogleProtocol(Protocol):
    """API-key auth and a requests-per-minute quota per key; no request ids."""

    family = "google"

    def authenticate(self, request: Request, expected: str | None) -> str:
        key = request.headers.get("x-goog-api-key") or request.query_params.get("key") or ""
        if not key.strip():
            raise GoogleError(401, UNREGISTERED)
        if expected is not None and key != expected:
            raise invalid_key()
        return key

    def limits(self, config: SimConfig) -> dict[str, int]:
        return {"requests": config.rpm_limit}

    async def rate_limited(
        self, request: Request, dimension: str, bucket: TokenBucket, amount: int, wait: float
    ) -> GoogleError:
        model = request.path_params.get("model", "veo")
        return GoogleError(
            429,
            "Quota exceeded for aiplatform.googleapis.com/online_prediction_requests_per_base_model"
            f" with base model: {model}. Please submit a quota increase request."
            " https://cloud.google.com/vertex-ai/docs/generative-ai/quotas-genai.",
        )

    def server_error(self, status_code: int) -> GoogleError:
        message = SERVER_MESSAGES.get(status_code, "The request failed.")
        return GoogleError(status_code, message)

    def new_request_id(self) -> str:
        return ""

    def headers(self, request_id: str, quota: Quota | None, elapsed: float) -> dict[str, str]:
        return {}


GOOGLE = GoogleProtocol()


def google_endpoint(name: str) -> Callable[[Endpoint], Endpoint]:
    """Give an endpoint what every Google answer has in common; see `Protocol.endpoint`."""
    return GOOGLE.endpoint(name)
