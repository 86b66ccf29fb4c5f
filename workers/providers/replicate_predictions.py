"""Replicate-style predictions: submit, poll and cancel a long-running model run.

Official models are run by name (``POST /models/{owner}/{name}/predictions``); a model
given as ``owner/name:version`` is run by version (``POST /predictions``). With a
``callback_url``, Replicate is asked to call it when the prediction completes (only then:
genq needs no start, output or logs events).

A ``starting`` prediction has not started (it waits for a model instance). Replicate gives no
progress field, but many models log a progress bar (``45%|####      | 45/100``): the last
percentage in the logs is the prediction's progress.
"""

import re
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
    "starting": AsyncState.RUNNING,
    "processing": AsyncState.RUNNING,
    "succeeded": AsyncState.SUCCEEDED,
    "failed": AsyncState.FAILED,
    "canceled": AsyncState.CANCELED,
    "aborted": AsyncState.CANCELED,
}
PERCENT = re.compile(r"(?<![\d.])(\d{1,3}(?:\.\d+)?)\s?%")


def logged_progress(logs: Any) -> float | None:
    """The last percentage in a prediction's logs, if any line shows one."""
    if not isinstance(logs, str):
        return None
    found = [float(m) for m in PERCENT.findall(logs) if float(m) <= 100]
    return found[-1] if found else None


class ReplicatePredictions(RouteAdapter):
    def submit(
        self, model: str, input: dict[str, Any], callback_url: str | None = None
    ) -> PollResult:
        name, _, version = model.partition(":")
        if version:
            url, body = f"{self.base}/predictions", {"version": version, "input": input}
        else:
            url, body = f"{self.base}/models/{name}/predictions", {"input": input}
        if callback_url:
            body |= {"webhook": callback_url, "webhook_events_filter": ["completed"]}
        response, data = request_json(
            self.client, "POST", url, json=body, headers=bearer(self.route)
        )
        return self._read(response, data)

    def poll(self, provider_job_id: str) -> PollResult:
        response, data = request_json(
            self.client,
            "GET",
            f"{self.base}/predictions/{provider_job_id}",
            headers=bearer(self.route),
        )
        return self._read(response, data)

    def cancel(self, provider_job_id: str) -> None:
        send(
            self.client,
            "POST",
            f"{self.base}/predictions/{provider_job_id}/cancel",
            headers=bearer(self.route),
        )

    def _read(self, response: httpx.Response, data: dict[str, Any]) -> PollResult:
        request_id = request_id_of(response)
        try:
            prediction_id = str(data["id"])
            status = data["status"]
            state = STATES[status]
            output = data.get("output")
            predict_time = float((data.get("metrics") or {}).get("predict_time") or 0)
        except SHAPE_ERRORS as exc:
            raise invalid_shape(response, exc) from None
        result = error = None
        if state == AsyncState.SUCCEEDED:
            urls = output if isinstance(output, list) else [output]
            result = ProviderResult(
                output={"urls": [u for u in urls if isinstance(u, str)], "raw": output},
                usage={"images": len(urls), "predict_seconds": predict_time},
                request_id=request_id,
                http_status=response.status_code,
            )
        elif state == AsyncState.FAILED:
            error = ProviderError(
                ErrorClass.PROVIDER_JOB_FAILED,
                f"prediction failed: {data.get('error') or 'no reason given'}"[:1000],
                retryable=False,
                request_id=request_id,
            )
        return PollResult(
            provider_job_id=prediction_id,
            state=state,
            request_id=request_id,
            http_status=response.status_code,
            progress=logged_progress(data.get("logs")) if status == "processing" else None,
            queued=status == "starting",
            result=result,
            error=error,
            rate_limit_headers=rate_limit_headers(response),
        )
