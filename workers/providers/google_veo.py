"""Google Veo on Vertex AI, as google-genai (3.x) calls it in enterprise mode with an API key.

The route's ``base_url`` is the versioned API root, e.g. ``https://aiplatform.googleapis.com/v1``
(express mode, ``x-goog-api-key``). The job's input is the ``predictLongRunning`` body,
``{"instances": [{"prompt": …}], "parameters": {…}}``.

- submit: ``POST {base}/publishers/google/models/{model}:predictLongRunning`` answers
  ``{"name": "projects/…/publishers/google/models/{model}/operations/{uuid}"}``.
- poll: ``POST {base}/{name up to /operations/}:fetchPredictOperation`` with
  ``{"operationName": name}``. Until done the operation says nothing (no progress), so
  polling leans on the model's learned duration. Done, it holds ``response.videos[]``
  (``gcsUri`` under ``parameters.storageUri``, else ``bytesBase64Encoded``) or a
  ``google.rpc.Status`` ``error``; done with no videos and ``raiMediaFilteredCount`` means
  responsible-AI filters refused them.
- cancel: a no-op that logs. The SDK has no cancel for Veo, and Vertex documents none for
  publisher-model operations (the generic ``{name}:cancel`` of Vertex LROs is not served
  for them), so the operation runs on and Google bills its video.

Google states no expiry for Veo's outputs (``gs://`` objects live in the caller's bucket),
so the output records none. The response does not repeat the video length, so the
provider job id carries the billed seconds per video: ``{operation name}#seconds={n}``.
"""

import logging
from typing import Any

import httpx

from schema.pricing import veo_seconds
from workers.providers.base import RouteAdapter
from workers.providers.errors import ErrorClass, ProviderError, from_response, from_transport
from workers.providers.http import (
    SHAPE_ERRORS,
    invalid_shape,
    json_object,
    rate_limit_headers,
    request_id_of,
)
from workers.providers.result import AsyncState, PollResult, ProviderResult

logger = logging.getLogger(__name__)

SECONDS_TAG = "#seconds="
RPC_CODES = {
    4: (ErrorClass.TIMEOUT, True),
    5: (ErrorClass.NOT_FOUND, False),
    7: (ErrorClass.AUTH, False),
    8: (ErrorClass.RATE_LIMITED, True),
    10: (ErrorClass.CONFLICT, True),
    13: (ErrorClass.SERVER, True),
    14: (ErrorClass.SERVER, True),
    16: (ErrorClass.AUTH, False),
}
"""google.rpc.Code of a failed operation to (class, retryable); any other code is the
request's own: ``provider_job_failed``, permanent."""


def model_path(model: str) -> str:
    """The model's resource path, as google-genai's ``t_model`` writes it in Vertex mode."""
    if model.startswith(("projects/", "publishers/", "models/")):
        return model
    publisher, _, name = model.rpartition("/")
    return f"publishers/{publisher or 'google'}/models/{name}"


class GoogleVeo(RouteAdapter):
    def submit(
        self, model: str, input: dict[str, Any], callback_url: str | None = None
    ) -> PollResult:
        url = f"{self.base}/{model_path(model)}:predictLongRunning"
        response, data = self._post(url, input)
        try:
            name = str(data["name"])
        except SHAPE_ERRORS as exc:
            raise invalid_shape(response, exc) from None
        return self._read(response, data, f"{name}{SECONDS_TAG}{veo_seconds(input)}")

    def poll(self, provider_job_id: str) -> PollResult:
        name = provider_job_id.partition(SECONDS_TAG)[0]
        resource = name.rpartition("/operations/")[0]
        url = f"{self.base}/{resource}:fetchPredictOperation"
        response, data = self._post(url, {"operationName": name})
        return self._read(response, data, provider_job_id)

    def cancel(self, provider_job_id: str) -> None:
        logger.info("Veo cannot cancel %s; it runs on and is billed", provider_job_id)

    def _post(self, url: str, body: dict[str, Any]) -> tuple[httpx.Response, dict[str, Any]]:
        key = self.route.api_key()
        headers = {"x-goog-api-key": key.get_secret_value()} if key else {}
        try:
            response = self.client.post(url, json=body, headers=headers)
        except httpx.TransportError as exc:
            raise from_transport(exc) from None
        if not response.is_success:
            raise google_error(response)
        return response, json_object(response)

    def _read(self, response: httpx.Response, data: dict[str, Any], job_id: str) -> PollResult:
        request_id = request_id_of(response)
        result = error = None
        state = AsyncState.RUNNING
        try:
            if data.get("done"):
                seconds = int(job_id.rpartition(SECONDS_TAG)[2])
                if "error" in data:
                    state, error = AsyncState.FAILED, operation_error(data["error"], request_id)
                else:
                    result, error = self._videos(response, data["response"], seconds)
                    state = AsyncState.SUCCEEDED if result else AsyncState.FAILED
        except SHAPE_ERRORS as exc:
            raise invalid_shape(response, exc) from None
        return PollResult(
            provider_job_id=job_id,
            state=state,
            request_id=request_id,
            http_status=response.status_code,
            result=result,
            error=error,
            rate_limit_headers=rate_limit_headers(response),
        )

    def _videos(
        self, response: httpx.Response, answer: dict[str, Any], seconds: int
    ) -> tuple[ProviderResult | None, ProviderError | None]:
        videos = [dict(video) for video in answer.get("videos") or []]
        request_id = request_id_of(response)
        if not videos:
            reasons = "; ".join(answer.get("raiMediaFilteredReasons") or []) or "no videos"
            filtered = int(answer.get("raiMediaFilteredCount") or 0)
            error_class = ErrorClass.CONTENT_POLICY if filtered else ErrorClass.PROVIDER_JOB_FAILED
            message = f"Veo returned no video: {reasons}"[:1000]
            return None, ProviderError(error_class, message, retryable=False, request_id=request_id)
        output = {
            "urls": [video["gcsUri"] for video in videos if video.get("gcsUri")],
            "videos": videos,
            "rai_media_filtered_count": int(answer.get("raiMediaFilteredCount") or 0),
        }
        usage = {"video_seconds": float(seconds * len(videos))}
        return ProviderResult(output, usage, request_id, response.status_code), None


def operation_error(status: dict[str, Any], request_id: str | None) -> ProviderError:
    """A done operation's ``google.rpc.Status`` in genq's taxonomy."""
    code = int(status.get("code") or 0)
    error_class, retryable = RPC_CODES.get(code, (ErrorClass.PROVIDER_JOB_FAILED, False))
    message = f"Veo operation failed (code {code}): {status.get('message') or 'no message'}"
    return ProviderError(error_class, message[:1000], retryable=retryable, request_id=request_id)


def google_error(response: httpx.Response) -> ProviderError:
    """A non-2xx answer in Google's envelope; a key Google does not know (400,
    ``API_KEY_INVALID``) is an auth error, not a bad request."""
    error = from_response(response, request_id_of(response))
    if error.http_status == 400 and "API_KEY_INVALID" in _reasons(response):
        return ProviderError(
            ErrorClass.AUTH,
            error.message,
            retryable=False,
            http_status=400,
            request_id=error.request_id,
        )
    return error


def _reasons(response: httpx.Response) -> set[str]:
    """The ``ErrorInfo`` reasons in a Google error's ``details``."""
    try:
        details = response.json()["error"].get("details") or []
        return {str(detail.get("reason")) for detail in details if isinstance(detail, dict)}
    except SHAPE_ERRORS:
        return set()
