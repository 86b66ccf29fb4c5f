"""Runway's task API, as the official ``runwayml`` SDK (5.x) calls it.

- submit: ``POST /v1/text_to_video``, or ``/v1/image_to_video`` when the input has a
  ``promptImage``, with ``Authorization: Bearer <key>``, ``X-Runway-Version: 2024-11-06``
  and the JSON body ``{model, promptText, promptImage, ratio, duration, seed, ...}``;
  Runway answers ``{"id", "estimatedCost"}``.
- poll: ``GET /v1/tasks/{id}``, whose ``status`` is PENDING, THROTTLED, RUNNING (with
  ``progress`` from 0 to 1), SUCCEEDED (``output``: URLs), FAILED (``failure``,
  ``failureCode``) or CANCELLED.
- cancel: ``DELETE /v1/tasks/{id}`` (204).

A task read does not repeat the request, so the provider job id genq keeps is
``<task id>@<duration>s``: the duration is what the route's ``per_video_second`` prices.

PENDING and THROTTLED tasks have not started: both are RUNNING, ``queued``, with
``progress`` None (a new task is PENDING).
THROTTLED (queued behind the account's concurrency) also sets ``poll_after_s`` to
``THROTTLED_POLL_S``: such a task waits for another of the account's tasks to finish,
and Runway says a task's state changes at most every five seconds. RUNNING's ``progress``
is reported in percent, as genq's other protocols do.

Output URLs expire. Runway states no time per URL; it documents that they "expire within
24-48 hours" and that reading the task again gives fresh ones. ``expires_at`` is therefore
the moment the URLs were read plus ``OUTPUT_URL_TTL_S``, the documented earliest, and
``expires_at_source`` says it is documented rather than stated.

``failureCode`` maps to genq's taxonomy: ``SAFETY.*`` (also ``INPUT_PREPROCESSING.SAFETY.*``)
is a content policy refusal, never retried; ``ASSET.*`` and ``INPUT.*`` are the request's own
bad input; ``INTERNAL.*`` (also ``INPUT_PREPROCESSING.INTERNAL``) is a failed provider job
that Runway says may be retried, so its error is retryable; any other code is a failed
provider job, not retried.
"""

import time
from typing import Any

import httpx

from schema.inputs import RUNWAY_DEFAULT_DURATION_S, RUNWAY_DEFAULT_RATIO
from workers.providers.base import RouteAdapter
from workers.providers.errors import ErrorClass, ProviderError, from_response, from_transport
from workers.providers.http import (
    SHAPE_ERRORS,
    bearer,
    invalid_shape,
    json_object,
    rate_limit_headers,
    request_id_of,
)
from workers.providers.result import AsyncState, PollResult, ProviderResult

RUNWAY_VERSION = "2024-11-06"
THROTTLED_POLL_S = 5.0
OUTPUT_URL_TTL_S = 24 * 3600
STATES = {
    "PENDING": AsyncState.RUNNING,
    "THROTTLED": AsyncState.RUNNING,
    "RUNNING": AsyncState.RUNNING,
    "SUCCEEDED": AsyncState.SUCCEEDED,
    "FAILED": AsyncState.FAILED,
    "CANCELLED": AsyncState.CANCELED,
}


class RunwayTasks(RouteAdapter):
    def submit(
        self, model: str, input: dict[str, Any], callback_url: str | None = None
    ) -> PollResult:
        defaults = {"ratio": RUNWAY_DEFAULT_RATIO, "duration": RUNWAY_DEFAULT_DURATION_S}
        body = {**defaults, **input, "model": model}
        kind = "image_to_video" if "promptImage" in input else "text_to_video"
        response = self._send("POST", f"/v1/{kind}", json=body)
        data = json_object(response)
        try:
            job_id = f"{data['id']}@{int(body['duration'])}s"
        except SHAPE_ERRORS as exc:
            raise invalid_shape(response, exc) from None
        return PollResult(
            provider_job_id=job_id,
            state=AsyncState.RUNNING,
            request_id=request_id_of(response),
            http_status=response.status_code,
            queued=True,
            rate_limit_headers=rate_limit_headers(response),
        )

    def poll(self, provider_job_id: str) -> PollResult:
        task_id, duration = _split(provider_job_id)
        response = self._send("GET", f"/v1/tasks/{task_id}")
        return self._read(response, json_object(response), provider_job_id, duration)

    def cancel(self, provider_job_id: str) -> None:
        self._send("DELETE", f"/v1/tasks/{_split(provider_job_id)[0]}")

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {**bearer(self.route), "X-Runway-Version": RUNWAY_VERSION}
        try:
            response = self.client.request(method, self.base + path, headers=headers, **kwargs)
        except httpx.TransportError as exc:
            raise from_transport(exc) from None
        if not response.is_success:
            raise refusal(response)
        return response

    def _read(
        self, response: httpx.Response, data: dict[str, Any], job_id: str, duration: int
    ) -> PollResult:
        request_id = request_id_of(response)
        try:
            status = data["status"]
            state = STATES[status]
            progress = 100 * float(data["progress"]) if status == "RUNNING" else None
            urls = [str(url) for url in data["output"]] if status == "SUCCEEDED" else []
        except SHAPE_ERRORS as exc:
            raise invalid_shape(response, exc) from None
        result = error = None
        if state == AsyncState.SUCCEEDED:
            output = {
                "task_id": data.get("id"),
                "urls": urls,
                "expires_at": int(time.time()) + OUTPUT_URL_TTL_S,
                "expires_at_source": "documented",
                "credits": (data.get("cost") or {}).get("credits"),
            }
            result = ProviderResult(
                output=output,
                usage={"video_seconds": float(duration)},
                request_id=request_id,
                http_status=response.status_code,
            )
        elif state == AsyncState.FAILED:
            error = task_failure(data.get("failureCode"), data.get("failure"), request_id)
        return PollResult(
            provider_job_id=job_id,
            state=state,
            request_id=request_id,
            http_status=response.status_code,
            progress=progress,
            poll_after_s=THROTTLED_POLL_S if status == "THROTTLED" else None,
            queued=status in ("PENDING", "THROTTLED"),
            result=result,
            error=error,
            rate_limit_headers=rate_limit_headers(response),
        )


def task_failure(code: Any, failure: Any, request_id: str | None) -> ProviderError:
    """A FAILED task's ``failureCode`` in genq's taxonomy (see the module docstring)."""
    code = str(code or "")
    parts = code.split(".")
    message = f"task failed ({code or 'no failure code'}): {failure or 'no reason given'}"
    if "SAFETY" in parts:
        error_class, retryable = ErrorClass.CONTENT_POLICY, False
    elif "INTERNAL" in parts:
        error_class, retryable = ErrorClass.PROVIDER_JOB_FAILED, True
    elif parts[0] in ("ASSET", "INPUT"):
        error_class, retryable = ErrorClass.BAD_REQUEST, False
    else:
        error_class, retryable = ErrorClass.PROVIDER_JOB_FAILED, False
    return ProviderError(error_class, message[:1000], retryable=retryable, request_id=request_id)


def refusal(response: httpx.Response) -> ProviderError:
    """A non-2xx answer in the taxonomy, with Runway's ``error`` and each of its ``issues``."""
    error = from_response(response, request_id_of(response))
    try:
        body = response.json()
    except ValueError:
        return error
    detail = body.get("error") if isinstance(body, dict) else None
    if not isinstance(detail, str):
        return error
    issues = body.get("issues") if isinstance(body.get("issues"), list) else []
    for issue in issues:
        if isinstance(issue, dict):
            path = ".".join(str(part) for part in issue.get("path") or []) or "(body)"
            detail += f"; {path}: {issue.get('message')}"
    return ProviderError(
        error.error_class,
        f"HTTP {response.status_code}: {detail}"[:1000],
        retryable=error.retryable,
        http_status=error.http_status,
        retry_after_s=error.retry_after_s,
        request_id=error.request_id,
    )


def _split(provider_job_id: str) -> tuple[str, int]:
    """The task id and requested duration that ``submit`` put in the provider job id."""
    task_id, _, seconds = provider_job_id.rpartition("@")
    if task_id and seconds.removesuffix("s").isdigit():
        return task_id, int(seconds.removesuffix("s"))
    return provider_job_id, RUNWAY_DEFAULT_DURATION_S
