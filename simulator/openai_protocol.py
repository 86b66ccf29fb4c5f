"""OpenAI's wire conventions shared by its endpoints: auth, error bodies and headers."""

import json
import math
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from simulator.config import SimConfig
from simulator.protocol import Endpoint, Protocol, ProtocolError, reason, retry_after
from simulator.ratelimit import Quota, TokenBucket

OPENAI_VERSION = "2020-10-01"
KEYS_URL = "https://platform.openai.com/account/api-keys"
NO_KEY_MESSAGE = (
    "You didn't provide an API key. You need to provide your API key in an Authorization "
    "header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY), or as the password field "
    "(with blank username) if you're accessing the API from your browser and are prompted for "
    f"a username and password. You can obtain an API key from {KEYS_URL}."
)
ORGANIZATION = "org-sim"
RATE_LIMITS_URL = "https://platform.openai.com/account/rate-limits"
SERVER_ERRORS: dict[int, tuple[str, str, str | int | None]] = {
    429: (
        "You exceeded your current quota, please check your plan and billing details. For more "
        "information on this error, read the docs: "
        "https://platform.openai.com/docs/guides/error-codes/api-errors.",
        "insufficient_quota",
        "insufficient_quota",
    ),
    500: (
        "The server had an error while processing your request. Sorry about that!",
        "server_error",
        None,
    ),
    502: ("Bad gateway.", "cf_bad_gateway", 502),
    503: ("The engine is currently overloaded, please try again later", "server_error", None),
    504: ("Gateway timeout.", "cf_gateway_timeout", 504),
}
"""Status code to the (message, type, code) OpenAI answers it with."""
UNPARSABLE_BODY_MESSAGE = (
    "We could not parse the JSON body of your request. (HINT: This likely means you aren't "
    "using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was "
    "sent was not valid JSON. If you have trouble figuring out how to fix this, please contact "
    "us through our help center at help.openai.com.)"
)


class OpenAIError(ProtocolError):
    """An error answered in OpenAI's shape, `{"error": {message, type, param, code}}`."""

    def __init__(
        self,
        status_code: int,
        message: str,
        *,
        error_type: str = "invalid_request_error",
        param: str | None = None,
        code: str | int | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.message = message
        self.error_type = error_type
        self.param = param
        self.code = code
        self.headers = dict(headers or {})

    def response(self, request_id: str = "") -> JSONResponse:
        """The HTTP answer OpenAI gives for this error."""
        error = {
            "message": self.message,
            "type": self.error_type,
            "param": self.param,
            "code": self.code,
        }
        return JSONResponse({"error": error}, status_code=self.status_code, headers=self.headers)


def invalid_request(
    message: str, *, param: str | None = None, code: str | None = None
) -> OpenAIError:
    """A 400 invalid_request_error."""
    return OpenAIError(400, message, param=param, code=code)


def missing(param: str) -> OpenAIError:
    """A required parameter was not sent."""
    message = f"Missing required parameter: '{param}'."
    return invalid_request(message, param=param, code="missing_required_parameter")


def invalid_type(param: str, expected: str, value: Any) -> OpenAIError:
    """A parameter has the wrong JSON type; expected reads like "a string"."""
    message = (
        f"Invalid type for '{param}': expected {expected}, but got {json_type(value)} instead."
    )
    return invalid_request(message, param=param, code="invalid_type")


def invalid_value(param: str, value: Any, supported: Sequence[str]) -> OpenAIError:
    """A parameter is not one of the supported values."""
    quoted = [f"'{choice}'" for choice in supported]
    listed = ", ".join(quoted[:-1]) + f", and {quoted[-1]}"
    message = f"Invalid value: {value!r}. Supported values are: {listed}."
    return invalid_request(message, param=param, code="invalid_value")


def unknown_parameter(param: str) -> OpenAIError:
    """A parameter the endpoint does not take."""
    return invalid_request(f"Unknown parameter: '{param}'.", param=param, code="unknown_parameter")


def empty_array(param: str) -> OpenAIError:
    """A parameter is an array that must not be empty."""
    message = (
        f"Invalid '{param}': empty array. Expected an array with minimum length 1, "
        "but got an empty array instead."
    )
    return invalid_request(message, param=param, code="empty_array")


def model_not_found(model: str) -> OpenAIError:
    """A 404 for a model the simulator does not serve."""
    message = f"The model `{model}` does not exist or you do not have access to it."
    return OpenAIError(404, message, code="model_not_found")


def required_string(obj: dict[str, Any], key: str, param: str) -> str:
    """obj[key], which must be a string; param names it in errors."""
    value = obj.get(key)
    if value is None:
        raise missing(param)
    if not isinstance(value, str):
        raise invalid_type(param, "a string", value)
    return value


def integer_param(
    body: dict[str, Any], name: str, minimum: int, maximum: int | None = None
) -> int | None:
    """body[name] if sent, an integer within [minimum, maximum]."""
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise invalid_type(name, "an integer", value)
    _check_range(name, value, "integer", minimum, maximum)
    return value


def decimal_param(body: dict[str, Any], name: str, minimum: float, maximum: float) -> float | None:
    """body[name] if sent, a number within [minimum, maximum]."""
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise invalid_type(name, "a decimal", value)
    _check_range(name, value, "decimal", minimum, maximum)
    return value


def _check_range(name: str, value: float, kind: str, minimum: float, maximum: float | None) -> None:
    if value < minimum:
        raise invalid_request(
            f"Invalid '{name}': {kind} below minimum value. "
            f"Expected a value >= {minimum}, but got {value} instead.",
            param=name,
            code=f"{kind}_below_min_value",
        )
    if maximum is not None and value > maximum:
        raise invalid_request(
            f"Invalid '{name}': {kind} above maximum value. "
            f"Expected a value <= {maximum}, but got {value} instead.",
            param=name,
            code=f"{kind}_above_max_value",
        )


def json_type(value: Any) -> str:
    """The JSON type of value the way OpenAI's messages name it, like "an integer"."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a decimal"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


async def read_json_object(request: Request) -> dict[str, Any]:
    """The request body, which must be a JSON object."""
    try:
        body = json.loads(await request.body())
    except ValueError:
        raise invalid_request(UNPARSABLE_BODY_MESSAGE) from None
    if not isinstance(body, dict):
        raise invalid_request(
            f"Invalid type for request body: expected an object, but got {json_type(body)} instead."
        )
    return body


def check_api_key(request: Request, expected: str | None) -> str:
    """The Bearer token, which must equal expected unless that is None."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise OpenAIError(401, NO_KEY_MESSAGE)
    if expected is not None and token != expected:
        shown = token if request.app.state.config.echo_keys else mask_key(token)
        message = f"Incorrect API key provided: {shown}. You can find your API key at {KEYS_URL}."
        raise OpenAIError(401, message, code="invalid_api_key")
    return token


def mask_key(key: str) -> str:
    """Key with all but its ends starred, as OpenAI echoes wrong keys."""
    if len(key) < 10:
        return "*" * len(key)
    return f"{key[:5]}***{key[-2:]}"


def format_duration(seconds: float) -> str:
    """A duration as OpenAI's reset headers write it: "0s", "6ms", "59.5s", "1m30s"."""
    millis = max(round(seconds * 1000), 0)
    if millis < 1000:
        return f"{millis}ms" if millis else "0s"
    minutes, millis = divmod(millis, 60_000)
    hours, minutes = divmod(minutes, 60)
    secs = f"{millis / 1000:.3f}".rstrip("0").rstrip(".")
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"


def rate_limit_headers(quota: Quota) -> dict[str, str]:
    """The x-ratelimit-* headers: the caller's request and token buckets as they are now."""
    headers = {}
    for dimension in ("requests", "tokens"):
        bucket = quota.buckets[dimension]
        headers[f"x-ratelimit-limit-{dimension}"] = str(bucket.limit)
        headers[f"x-ratelimit-remaining-{dimension}"] = str(bucket.remaining)
        headers[f"x-ratelimit-reset-{dimension}"] = format_duration(bucket.reset_after())
    return headers


async def requested_model(request: Request) -> str | None:
    """The model a JSON request body names, if it names one."""
    if "json" not in request.headers.get("content-type", ""):
        return None
    try:
        body = json.loads(await request.body())
    except ValueError:
        return None
    model = body.get("model") if isinstance(body, dict) else None
    return model if isinstance(model, str) else None


class OpenAIProtocol(Protocol):
    """Bearer keys, `{"error": ...}` bodies, x-request-id and x-ratelimit-* headers."""

    family = "openai"

    def authenticate(self, request: Request, expected: str | None) -> str:
        return check_api_key(request, expected)

    def limits(self, config: SimConfig) -> dict[str, int]:
        return {"requests": config.rpm_limit, "tokens": config.tpm_limit}

    async def rate_limited(
        self, request: Request, dimension: str, bucket: TokenBucket, amount: int, wait: float
    ) -> OpenAIError:
        model = await requested_model(request)
        where = f"in organization {ORGANIZATION}"
        if model:
            where = f"for {model} {where}"
        unit = "requests per min (RPM)" if dimension == "requests" else "tokens per min (TPM)"
        if math.isinf(wait):
            message = (
                f"Request too large {where} on {unit}: Limit {bucket.limit}, Requested {amount}. "
                "The input or output tokens must be reduced in order to run successfully. "
                f"Visit {RATE_LIMITS_URL} to learn more."
            )
            return OpenAIError(429, message, error_type=dimension, code="rate_limit_exceeded")
        message = (
            f"Rate limit reached {where} on {unit}: Limit {bucket.limit}, Used {bucket.used}, "
            f"Requested {amount}. Please try again in {format_duration(wait)}. "
            f"Visit {RATE_LIMITS_URL} to learn more."
        )
        headers = {"retry-after": retry_after(wait), "retry-after-ms": str(math.ceil(wait * 1000))}
        return OpenAIError(
            429, message, error_type=dimension, code="rate_limit_exceeded", headers=headers
        )

    def server_error(self, status_code: int) -> OpenAIError:
        message, error_type, code = SERVER_ERRORS.get(
            status_code, (reason(status_code), "server_error", None)
        )
        return OpenAIError(status_code, message, error_type=error_type, code=code)

    def new_request_id(self) -> str:
        return f"req_{uuid.uuid4().hex}"

    def headers(self, request_id: str, quota: Quota | None, elapsed: float) -> dict[str, str]:
        headers = {
            "x-request-id": request_id,
            "openai-version": OPENAI_VERSION,
            "openai-processing-ms": str(round(elapsed * 1000)),
        }
        return headers | rate_limit_headers(quota) if quota else headers


OPENAI = OpenAIProtocol()


def openai_endpoint(name: str) -> Callable[[Endpoint], Endpoint]:
    """Give an endpoint what every OpenAI answer has in common; see `Protocol.endpoint`."""
    return OPENAI.endpoint(name)


async def invalid_url(request: Request, exc: HTTPException) -> Response:
    """OpenAI's answer to a path or method it does not serve."""
    message = f"Invalid URL ({request.method} {request.url.path})"
    error = OpenAIError(exc.status_code, message).response()
    error.headers.update(exc.headers or {})
    return error
