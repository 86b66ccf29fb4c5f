"""fal's queue API, as the official ``fal-client`` SDK calls it.

Submit ``POST {base}/{app id}`` (the app id may carry a sub-path, ``fal-ai/veo3/fast``) with
``Authorization: Key …``; poll ``GET {base}/{owner}/{alias}/requests/{id}/status``
(``IN_QUEUE`` + ``queue_position``, ``IN_PROGRESS``, ``COMPLETED`` with ``error`` when it
failed); fetch ``GET …/requests/{id}``; cancel ``PUT …/requests/{id}/cancel`` (202, or 400
``ALREADY_COMPLETED``). Like the SDK, the request URLs drop the app id's sub-path.

The provider job id is ``{owner}/{alias}/requests/{request id}``: all a poll needs. fal's
results state no expiry for their media URLs, and fal gives no progress figure, so a job
reports its queue position until it starts and no progress after.
"""

from typing import Any

import httpx

from schema.routes import Route
from workers.providers.base import RouteAdapter
from workers.providers.errors import ErrorClass, ProviderError, from_response, from_transport
from workers.providers.http import (
    SHAPE_ERRORS,
    invalid_shape,
    rate_limit_headers,
    request_id_of,
    request_json,
)
from workers.providers.result import AsyncState, PollResult, ProviderResult

NAMESPACES = ("workflows", "comfy")
"""App id prefixes that take a third segment, as in the SDK's ``AppId``."""


def key_header(route: Route) -> dict[str, str]:
    """``Authorization: Key <key>`` with the route's key, if it has one."""
    key = route.api_key()
    return {"Authorization": f"Key {key.get_secret_value()}"} if key else {}


def app_root(app_id: str) -> str:
    """The part of an app id that request URLs keep: ``[namespace/]owner/alias``."""
    parts = app_id.strip("/").split("/")
    return "/".join(parts[: 3 if parts[0] in NAMESPACES else 2])


class FalQueue(RouteAdapter):
    def submit(
        self, model: str, input: dict[str, Any], callback_url: str | None = None
    ) -> PollResult:
        response, data = request_json(
            self.client,
            "POST",
            f"{self.base}/{model}",
            json=input,
            headers=key_header(self.route),
            params={"fal_webhook": callback_url} if callback_url else None,
        )
        try:
            request_id = str(data["request_id"])
            position = data.get("queue_position")
        except SHAPE_ERRORS as exc:
            raise invalid_shape(response, exc) from None
        return PollResult(
            provider_job_id=f"{app_root(model)}/requests/{request_id}",
            state=AsyncState.RUNNING,
            request_id=request_id,
            http_status=response.status_code,
            queue_position=int(position) if isinstance(position, int) else None,
            queued=True,
            rate_limit_headers=rate_limit_headers(response),
        )

    def poll(self, provider_job_id: str) -> PollResult:
        response, data = request_json(
            self.client,
            "GET",
            f"{self.base}/{provider_job_id}/status",
            headers=key_header(self.route),
        )
        request_id = provider_job_id.rsplit("/", 1)[-1]
        try:
            status = data["status"]
            position = data["queue_position"] if status == "IN_QUEUE" else None
            if status not in ("IN_QUEUE", "IN_PROGRESS", "COMPLETED"):
                raise ValueError(f"unknown status {status!r}")
        except SHAPE_ERRORS as exc:
            raise invalid_shape(response, exc) from None
        state, result, error = AsyncState.RUNNING, None, None
        if status == "COMPLETED" and data.get("error"):
            state = AsyncState.FAILED
            error = ProviderError(
                ErrorClass.PROVIDER_JOB_FAILED,
                f"request failed: {data['error']} ({data.get('error_type') or 'no type'})"[:1000],
                retryable=False,
                request_id=request_id,
            )
        elif status == "COMPLETED":
            state, result = AsyncState.SUCCEEDED, self._result(provider_job_id, request_id)
        return PollResult(
            provider_job_id=provider_job_id,
            state=state,
            request_id=request_id,
            http_status=response.status_code,
            progress=100.0 if result is not None else None,
            queue_position=int(position) if position is not None else None,
            queued=status == "IN_QUEUE",
            result=result,
            error=error,
            rate_limit_headers=rate_limit_headers(response),
        )

    def cancel(self, provider_job_id: str) -> None:
        """Ask fal to stop the request; one that already completed needs nothing."""
        url = f"{self.base}/{provider_job_id}/cancel"
        try:
            response = self.client.request("PUT", url, headers=key_header(self.route))
        except httpx.TransportError as exc:
            raise from_transport(exc) from None
        if response.is_success or _already_completed(response):
            return
        raise from_response(response, request_id_of(response))

    def _result(self, provider_job_id: str, request_id: str) -> ProviderResult:
        response, data = request_json(
            self.client, "GET", f"{self.base}/{provider_job_id}", headers=key_header(self.route)
        )
        try:
            videos = [data["video"]] if "video" in data else list(data.get("videos") or [])
            urls = [str(video["url"]) for video in videos]
        except SHAPE_ERRORS as exc:
            raise invalid_shape(response, exc) from None
        return ProviderResult(
            output={"urls": urls, "videos": videos, "request_id": request_id},
            usage={},
            request_id=request_id,
            http_status=response.status_code,
        )


def _already_completed(response: httpx.Response) -> bool:
    try:
        body = response.json()
    except ValueError:
        return False
    return (
        response.status_code == 400
        and isinstance(body, dict)
        and (body.get("status") == "ALREADY_COMPLETED")
    )
