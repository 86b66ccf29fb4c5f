"""OpenAI's wire conventions shared by its endpoints: auth, error bodies and headers."""

import asyncio
import functools
import json
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from simulator.config import SimConfig
from simulator.ratelimit import RateLimits

OPENAI_VERSION = "2020-10-01"
KEYS_URL = "https://platform.openai.com/account/api-keys"
NO_KEY_MESSAGE = (
    "You didn't provide an API key. You need to provide your API key in an Authorization "
    "header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY), or as the password field "
    "(with blank username) if you're accessing the API from your browser and are prompted for "
    f"a username and password. You can obtain an API key from {KEYS_URL}."
)
UNPARSABLE_BODY_MESSAGE = (
    "We could not parse the JSON body of your request. (HINT: This likely means you aren't "
    "using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was "
    "sent was not valid JSON. If you have trouble figuring out how to fix this, please contact "
    "us through our help center at help.openai.com.)"
)

Endpoint = Callable[[Request], Awaitable[Response]]


class OpenAIError(Exception):
    """An error answered in OpenAI's shape, `{"error": {message, type, param, code}}`."""

    def __init__(
        self,
        status_code: int,
        message: str,
        *,
        error_type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.message = message
        self.error_type = error_type
        self.param = param
        self.code = code

    def response(self) -> JSONResponse:
        """The HTTP answer OpenAI gives for this error."""
        error = {
            "message": self.message,
            "type": self.error_type,
            "param": self.param,
            "code": self.code,
        }
        return JSONResponse({"error": error}, status_code=self.status_code)


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


def check_api_key(request: Request, expected: str | None) -> None:
    """Require a Bearer token, equal to expected unless that is None."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise OpenAIError(401, NO_KEY_MESSAGE)
    if expected is not None and token != expected:
        message = (
            f"Incorrect API key provided: {mask_key(token)}. "
            f"You can find your API key at {KEYS_URL}."
        )
        raise OpenAIError(401, message, code="invalid_api_key")


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


def rate_limit_headers(limits: RateLimits, config: SimConfig) -> dict[str, str]:
    """The x-ratelimit-* headers describing current usage against the configured limits."""
    return {
        "x-ratelimit-limit-requests": str(config.rpm_limit),
        "x-ratelimit-limit-tokens": str(config.tpm_limit),
        "x-ratelimit-remaining-requests": str(limits.requests.remaining(config.rpm_limit)),
        "x-ratelimit-remaining-tokens": str(limits.tokens.remaining(config.tpm_limit)),
        "x-ratelimit-reset-requests": format_duration(limits.requests.reset_after()),
        "x-ratelimit-reset-tokens": format_duration(limits.tokens.reset_after()),
    }


def openai_endpoint(name: str) -> Callable[[Endpoint], Endpoint]:
    """Give an endpoint what every OpenAI answer has in common.

    The wrapped endpoint is counted in the stats under name, delayed by the
    configured latency, and guarded by the API key. It raises `OpenAIError`
    to answer an error. Every answer, success or error, carries a request id,
    the processing time and the rate-limit headers.
    """

    def decorate(endpoint: Endpoint) -> Endpoint:
        @functools.wraps(endpoint)
        async def answer(request: Request) -> Response:
            started = time.perf_counter()
            state = request.app.state
            state.stats.calls[name] += 1
            if state.config.latency_ms:
                await asyncio.sleep(state.config.latency_ms / 1000)
            try:
                check_api_key(request, state.config.api_key)
                state.limits.requests.add(1)
                response = await endpoint(request)
            except OpenAIError as error:
                state.stats.errors[name] += 1
                response = error.response()
            response.headers.update(
                {
                    "x-request-id": f"req_{uuid.uuid4().hex}",
                    "openai-version": OPENAI_VERSION,
                    "openai-processing-ms": str(round((time.perf_counter() - started) * 1000)),
                    **rate_limit_headers(state.limits, state.config),
                }
            )
            return response

        return answer

    return decorate


async def invalid_url(request: Request, exc: HTTPException) -> Response:
    """OpenAI's answer to a path or method it does not serve."""
    message = f"Invalid URL ({request.method} {request.url.path})"
    error = OpenAIError(exc.status_code, message).response()
    error.headers.update(exc.headers or {})
    return error
