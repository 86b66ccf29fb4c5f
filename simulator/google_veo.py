"""Google Veo on Vertex AI: ``predictLongRunning`` starts a video operation,
``fetchPredictOperation`` reads it, as google-genai's ``generate_videos`` and
``operations.get`` call them in enterprise (Vertex) mode.

Both answer under ``/{v1|v1beta1}/publishers/google/models/{model}`` (express mode, an API
key) and under ``/{version}/projects/{p}/locations/{l}/publishers/google/models/{model}``.
An operation is named ``projects/{p}/locations/{l}/publishers/google/models/{model}/
operations/{uuid}``; it says nothing (no ``done``, no progress) until it is done, then
carries ``response.videos[]`` (``gcsUri`` under the request's ``storageUri``, else
``bytesBase64Encoded``) or a ``google.rpc.Status`` ``error``. Veo has no cancel here.

A prompt containing "fail" ends in an INTERNAL error; one containing "forbidden" is
filtered by responsible-AI checks: done, with no videos and ``raiMediaFilteredCount``.
"""

import base64
import json
import re
import uuid
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from simulator.files import MP4
from simulator.google_protocol import google_endpoint, invalid_argument, not_found
from simulator.jobs import Job, Phase, start_job

VERSIONS = ("v1", "v1beta1")
EXPRESS_PROJECT = "genq-simulator"
EXPRESS_LOCATION = "us-central1"
BODY_FIELDS = frozenset({"instances", "parameters", "labels"})
DURATIONS = range(4, 9)
SAMPLES = range(1, 5)
RESPONSE_TYPE = "type.googleapis.com/cloud.ai.large_models.vision.GenerateVideoResponse"
INTERNAL = 13
FAILURE = "Video generation failed: the simulator fails every prompt containing 'fail'."
FILTERED = (
    "Unable to show generated videos. All videos were filtered out because they violated"
    " Vertex AI's usage guidelines. Support codes: 90789179"
)
FAILING_WORD = re.compile(r"fail", re.IGNORECASE)
FILTERED_WORD = re.compile(r"\bforbidden\b", re.IGNORECASE)


@google_endpoint("veo.generate")
async def predict_long_running(request: Request) -> JSONResponse:
    """POST …/models/{model}:predictLongRunning: start an operation, answer its name."""
    project, location, model = _resource(request)
    body = await _json_object(request)
    instance, parameters = _check_request(body)
    operation_id = str(uuid.uuid4())
    name = (
        f"projects/{project}/locations/{location}/publishers/google/models/{model}"
        f"/operations/{operation_id}"
    )
    prompt = instance.get("prompt") or ""
    params = {
        "name": name,
        "model": model,
        "parameters": parameters,
        "filtered": bool(FILTERED_WORD.search(prompt)),
    }
    start_job(request.app.state, operation_id, "veo", params, bool(FAILING_WORD.search(prompt)))
    return JSONResponse({"name": name})


@google_endpoint("veo.fetch")
async def fetch_predict_operation(request: Request) -> JSONResponse:
    """POST …/models/{model}:fetchPredictOperation with ``{"operationName": …}``."""
    _, _, model = _resource(request)
    body = await _json_object(request)
    name = body.get("operationName")
    if not isinstance(name, str) or not name:
        raise invalid_argument("operationName is required.")
    job = request.app.state.jobs.get(name.rpartition("/operations/")[2])
    if job is None or job.kind != "veo" or job.params["name"] != name:
        raise not_found(f"Operation {name} not found.")
    if job.params["model"] != model:
        raise not_found(f"Operation {name} not found.")
    now = request.app.state.clock()
    job.observe(now)
    return JSONResponse(operation_object(job, now))


def operation_object(job: Job, now: float) -> dict[str, Any]:
    """The operation as Vertex describes it at the instant now."""
    phase = job.phase(now)
    name = job.params["name"]
    if phase is Phase.FAILED:
        return {"name": name, "done": True, "error": {"code": INTERNAL, "message": FAILURE}}
    if phase is not Phase.SUCCEEDED:
        return {"name": name}
    parameters = job.params["parameters"]
    count = parameters.get("sampleCount", 1)
    response: dict[str, Any] = {"@type": RESPONSE_TYPE}
    if job.params["filtered"]:
        response |= {"raiMediaFilteredCount": count, "raiMediaFilteredReasons": [FILTERED]}
    else:
        storage = parameters.get("storageUri")
        response |= {
            "raiMediaFilteredCount": 0,
            "videos": [_video(storage, job.id, index) for index in range(count)],
        }
    return {"name": name, "done": True, "response": response}


routes = [
    Route(f"{prefix}/publishers/{{publisher}}/models/{{model}}:{verb}", endpoint, methods=["POST"])
    for prefix in ("/{version}", "/{version}/projects/{project}/locations/{location}")
    for verb, endpoint in (
        ("predictLongRunning", predict_long_running),
        ("fetchPredictOperation", fetch_predict_operation),
    )
]


def _resource(request: Request) -> tuple[str, str, str]:
    """The (project, location, model) the path names, or Google's 404."""
    params = request.path_params
    project = params.get("project", EXPRESS_PROJECT)
    location = params.get("location", EXPRESS_LOCATION)
    model = params["model"]
    if (
        params["version"] not in VERSIONS
        or params["publisher"] != "google"
        or not model.startswith("veo-")
    ):
        raise not_found(
            f"Publisher Model `projects/{project}/locations/{location}/publishers/"
            f"{params['publisher']}/models/{model}` was not found or your project does not"
            " have access to it."
        )
    return project, location, model


async def _json_object(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.body())
    except ValueError:
        raise invalid_argument("Invalid JSON payload received.") from None
    if not isinstance(body, dict):
        raise invalid_argument("Invalid JSON payload received. Expected an object.")
    return body


def _check_request(body: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The one instance and the parameters of a Veo request, checked as Vertex does."""
    for field in body:
        if field not in BODY_FIELDS:
            raise invalid_argument(
                f'Invalid JSON payload received. Unknown name "{field}": Cannot find field.'
            )
    instances = body.get("instances")
    if not isinstance(instances, list) or len(instances) != 1:
        raise invalid_argument("instances must hold exactly one instance.")
    instance = instances[0]
    if not isinstance(instance, dict) or not (instance.get("prompt") or instance.get("image")):
        raise invalid_argument("The instance needs a prompt or an image.")
    parameters = body.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise invalid_argument("parameters must be an object.")
    for field, allowed in (("durationSeconds", DURATIONS), ("sampleCount", SAMPLES)):
        value = parameters.get(field, allowed[0])
        if isinstance(value, bool) or not isinstance(value, int) or value not in allowed:
            raise invalid_argument(
                f"{field} must be an integer from {allowed[0]} to {allowed[-1]}; got {value!r}."
            )
    storage = parameters.get("storageUri")
    if storage is not None and not (isinstance(storage, str) and storage.startswith("gs://")):
        raise invalid_argument("storageUri must be a Cloud Storage URI (gs://bucket/path).")
    return instance, parameters


def _video(storage: str | None, folder: str, index: int) -> dict[str, str]:
    if storage:
        uri = f"{storage.rstrip('/')}/{folder}/sample_{index}.mp4"
        return {"gcsUri": uri, "mimeType": "video/mp4"}
    return {"bytesBase64Encoded": base64.b64encode(MP4).decode(), "mimeType": "video/mp4"}
