"""OpenAI videos: ``POST /videos`` (multipart, as the official SDK sends it), poll
``GET /videos/{id}`` (``progress``, ``openai-poll-after-ms``), fetch
``GET /videos/{id}/content``, cancel with ``DELETE /videos/{id}``.

The content URL needs the provider key and expires (``expires_at``), so the output
records both the URL and its expiry.
"""

from typing import Any

import httpx

from workers.providers.base import RouteAdapter
from workers.providers.errors import ErrorClass, ProviderError
from workers.providers.http import (
    SHAPE_ERRORS,
    bearer,
    invalid_shape,
    rate_limit_headers,
    request_id_of,
    request_json,
    send,
)
from workers.providers.result import AsyncState, PollResult, ProviderResult

STATES = {
    "queued": AsyncState.RUNNING,
    "in_progress": AsyncState.RUNNING,
    "completed": AsyncState.SUCCEEDED,
    "failed": AsyncState.FAILED,
}


class OpenAIVideos(RouteAdapter):
    def submit(
        self, model: str, input: dict[str, Any], callback_url: str | None = None
    ) -> PollResult:
        fields = {**input, "model": model}
        form = [(name, (None, str(value))) for name, value in fields.items()]
        response, data = request_json(
            self.client, "POST", f"{self.base}/videos", files=form, headers=bearer(self.route)
        )
        return self._read(response, data)

    def poll(self, provider_job_id: str) -> PollResult:
        response, data = request_json(
            self.client, "GET", f"{self.base}/videos/{provider_job_id}", headers=bearer(self.route)
        )
        return self._read(response, data)

    def cancel(self, provider_job_id: str) -> None:
        send(
            self.client,
            "DELETE",
            f"{self.base}/videos/{provider_job_id}",
            headers=bearer(self.route),
        )

    def content(self, provider_job_id: str, variant: str = "video") -> bytes:
        """The finished video's bytes (or its ``thumbnail`` / ``spritesheet``)."""
        return send(
            self.client,
            "GET",
            f"{self.base}/videos/{provider_job_id}/content",
            params={"variant": variant},
            headers=bearer(self.route),
        ).content

    def _read(self, response: httpx.Response, data: dict[str, Any]) -> PollResult:
        request_id = request_id_of(response)
        try:
            video_id = str(data["id"])
            state = STATES[data["status"]]
            progress = float(data.get("progress") or 0)
            seconds = float(data.get("seconds") or 0)
        except SHAPE_ERRORS as exc:
            raise invalid_shape(response, exc) from None
        hint = response.headers.get("openai-poll-after-ms")
        result = error = None
        if state == AsyncState.SUCCEEDED:
            result = ProviderResult(
                output={
                    "video_id": video_id,
                    "urls": [f"{self.base}/videos/{video_id}/content"],
                    "expires_at": data.get("expires_at"),
                    "seconds": data.get("seconds"),
                    "size": data.get("size"),
                },
                usage={"video_seconds": seconds},
                request_id=request_id,
                http_status=response.status_code,
            )
        elif state == AsyncState.FAILED:
            detail = data.get("error") or {}
            error = ProviderError(
                ErrorClass.PROVIDER_JOB_FAILED,
                f"video failed: {detail.get('message') or detail.get('code') or 'no reason'}",
                retryable=False,
                request_id=request_id,
            )
        return PollResult(
            provider_job_id=video_id,
            state=state,
            request_id=request_id,
            http_status=response.status_code,
            progress=progress,
            poll_after_s=float(hint) / 1000 if hint and hint.isdigit() else None,
            result=result,
            error=error,
            rate_limit_headers=rate_limit_headers(response),
        )
