"""Sending one request to a provider and turning every failure into a ``ProviderError``."""

from functools import lru_cache
from typing import Any

import httpx

from schema.routes import Route
from workers.providers.errors import ErrorClass, ProviderError, from_response, from_transport

RATE_LIMIT_PREFIXES = ("x-ratelimit-", "anthropic-ratelimit-", "retry-after")

# A route's URLs repeat from call to call; httpx would parse each again. Its URLs are
# immutable, so one parse serves every request to the same URL.
parsed_url = lru_cache(maxsize=1024)(httpx.URL)


def bearer(route: Route) -> dict[str, str]:
    """``Authorization: Bearer <key>`` with the route's key, if it has one."""
    key = route.api_key()
    return {"Authorization": f"Bearer {key.get_secret_value()}"} if key else {}


def request_id_of(response: httpx.Response) -> str | None:
    return response.headers.get("x-request-id") or response.headers.get("request-id")


def rate_limit_headers(response: httpx.Response) -> dict[str, str]:
    return {k: v for k, v in response.headers.items() if k.lower().startswith(RATE_LIMIT_PREFIXES)}


def send(client: httpx.Client, method: str, url: str, **kwargs: Any) -> httpx.Response:
    """Send a request; raise ``ProviderError`` unless the answer is 2xx."""
    try:
        response = client.request(method, parsed_url(url), **kwargs)
    except httpx.TransportError as exc:
        raise from_transport(exc) from None
    return success(response)


async def send_async(
    client: httpx.AsyncClient, method: str, url: str, **kwargs: Any
) -> httpx.Response:
    """``send`` on an event loop."""
    try:
        response = await client.request(method, parsed_url(url), **kwargs)
    except httpx.TransportError as exc:
        raise from_transport(exc) from None
    return success(response)


def success(response: httpx.Response) -> httpx.Response:
    """The answer if it is 2xx; otherwise the ``ProviderError`` it says."""
    if not response.is_success:
        raise from_response(response, request_id_of(response))
    return response


def json_object(response: httpx.Response) -> dict[str, Any]:
    """The answer's JSON object; a 2xx that is not one is a retryable provider fault."""
    try:
        data = response.json()
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise ProviderError(
            ErrorClass.INVALID_RESPONSE,
            "provider answered 2xx with a body that is not a JSON object",
            retryable=True,
            http_status=response.status_code,
            request_id=request_id_of(response),
        )
    return data


def request_json(
    client: httpx.Client, method: str, url: str, **kwargs: Any
) -> tuple[httpx.Response, dict[str, Any]]:
    response = send(client, method, url, **kwargs)
    return response, json_object(response)


def invalid_shape(response: httpx.Response, exc: Exception) -> ProviderError:
    """A 2xx JSON answer that lacks the fields the protocol promises."""
    return ProviderError(
        ErrorClass.INVALID_RESPONSE,
        f"answer without the expected fields ({type(exc).__name__}: {exc})",
        retryable=True,
        http_status=response.status_code,
        request_id=request_id_of(response),
    )


SHAPE_ERRORS = (KeyError, IndexError, TypeError, AttributeError, ValueError)
