"""Sending one request to a provider and turning every failure into a ``ProviderError``."""

from typing import Any

import httpx

from workers.providers.errors import ErrorClass, ProviderError, from_response, from_transport

RATE_LIMIT_PREFIXES = ("x-ratelimit-", "anthropic-ratelimit-", "retry-after")


def request_id_of(response: httpx.Response) -> str | None:
    return response.headers.get("x-request-id") or response.headers.get("request-id")


def rate_limit_headers(response: httpx.Response) -> dict[str, str]:
    return {k: v for k, v in response.headers.items() if k.lower().startswith(RATE_LIMIT_PREFIXES)}


def post_json(
    client: httpx.Client, url: str, body: dict[str, Any], headers: dict[str, str]
) -> tuple[httpx.Response, dict[str, Any]]:
    """POST ``body``; return the response and its decoded JSON object, or raise."""
    try:
        response = client.post(url, json=body, headers=headers)
    except httpx.TransportError as exc:
        raise from_transport(exc) from None
    request_id = request_id_of(response)
    if not response.is_success:
        raise from_response(response, request_id)
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
            request_id=request_id,
        )
    return response, data
