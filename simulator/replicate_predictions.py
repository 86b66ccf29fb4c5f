"""Replicate's predictions: create (by version or by model), poll, cancel.

A version is "owner/name", "owner/name:version_id" or a bare version id. The
simulator serves every model, deriving a stable version id from its name; it
cannot know the model of a bare id, so it reports it as "unknown/unknown". A prediction
created with `webhook` posts signed events there (`simulator.replicate_webhooks`).
"""

import base64
import datetime
import functools
import hashlib
import json
import re
import secrets
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from simulator import replicate_webhooks
from simulator.files import file_url
from simulator.jobs import Job, Phase, start_job
from simulator.replicate_protocol import (
    invalid_fields,
    invalid_version,
    not_found,
    replicate_endpoint,
)

MODEL = re.compile(r"[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*")
VERSION_ID = re.compile(r"[A-Za-z0-9]+")
UNKNOWN_MODEL = "unknown/unknown"
OPTIONAL_FIELDS = ("stream", "webhook", "webhook_events_filter")
STATUSES = {
    Phase.QUEUED: "starting",
    Phase.RUNNING: "processing",
    Phase.SUCCEEDED: "succeeded",
    Phase.FAILED: "failed",
    Phase.CANCELED: "canceled",
}
STEPS = 50
LOGGED_EVERY = 5
MAX_OUTPUTS = 4
FAILING_WORD = re.compile(r"fail", re.IGNORECASE)
FAILURE = "Prediction failed: the simulator fails every prompt containing 'fail'."


def resolve_version(version: Any) -> tuple[str, str]:
    """The (model, version id) a `version` field names, or Replicate's 422."""
    if not isinstance(version, str):
        raise invalid_version()
    name, _, version_id = version.partition(":")
    if MODEL.fullmatch(name) and (not version_id or VERSION_ID.fullmatch(version_id)):
        return name, version_id or derived_version(name)
    if VERSION_ID.fullmatch(version):
        return UNKNOWN_MODEL, version
    raise invalid_version()


def derived_version(model: str) -> str:
    """The stable 64-hex version id the simulator gives a model's latest version."""
    return hashlib.sha256(model.encode()).hexdigest()


def parse_body(raw: bytes, required: tuple[str, ...]) -> dict[str, Any]:
    """The request body, checked as Replicate's schema does: required fields, no others."""
    try:
        body = json.loads(raw)
    except ValueError:
        raise invalid_fields([_field("invalid_json", "", "Invalid JSON body")]) from None
    if not isinstance(body, dict):
        message = f"Invalid type. Expected: object, given: {_json_type(body)}"
        raise invalid_fields([_field("invalid_type", "", message)])
    problems = [
        _field("required", "", f"{name} is required") for name in required if name not in body
    ]
    problems += [
        _field("additional_property_not_allowed", "", f"Additional property {name} is not allowed")
        for name in body
        if name not in required and name not in OPTIONAL_FIELDS
    ]
    if "input" in body and not isinstance(body["input"], dict):
        message = f"Invalid type. Expected: object, given: {_json_type(body['input'])}"
        problems.append(_field("invalid_type", "input", message))
    if problems:
        raise invalid_fields(problems)
    return body


def prediction_object(request: Request, job: Job, now: float) -> dict[str, Any]:
    """The prediction as Replicate describes it at the instant now."""
    phase = job.phase(now)
    started = now >= job.started_at and (
        job.canceled_at is None or job.canceled_at > job.started_at
    )
    finished_at = job.finished_at(now)
    metrics = {}
    if phase in (Phase.SUCCEEDED, Phase.FAILED):
        metrics = {
            "predict_time": round(job.finishes_at - job.started_at, 6),
            "total_time": round(job.duration_s, 6),
        }
    prediction_id = job.id
    get_url = str(request.url_for("get_prediction", prediction_id=prediction_id))
    return {
        "id": prediction_id,
        "model": job.params["model"],
        "version": job.params["version"],
        "input": job.params["input"],
        "logs": _logs(job, now) if started else "",
        "output": _outputs(request, job) if phase is Phase.SUCCEEDED else None,
        "data_removed": False,
        "error": FAILURE if phase is Phase.FAILED else None,
        "status": STATUSES[phase],
        "created_at": _timestamp(job.created_at),
        "started_at": _timestamp(job.started_at) if started else None,
        "completed_at": _timestamp(finished_at) if finished_at is not None else None,
        "urls": {
            "get": get_url,
            "cancel": f"{get_url}/cancel",
            "web": f"https://replicate.com/p/{prediction_id}",
        },
        "metrics": metrics,
    }


@replicate_endpoint("predictions.create")
async def create_prediction(request: Request) -> JSONResponse:
    """POST /v1/predictions with a `version`."""
    body = parse_body(await request.body(), ("version", "input"))
    model, version = resolve_version(body["version"])
    return _start(request, model, version, body)


@replicate_endpoint("predictions.create")
async def create_model_prediction(request: Request) -> JSONResponse:
    """POST /v1/models/{owner}/{name}/predictions, running the model's latest version."""
    body = parse_body(await request.body(), ("input",))
    model = f"{request.path_params['owner']}/{request.path_params['name']}"
    return _start(request, model, derived_version(model), body)


@replicate_endpoint("predictions.get")
async def get_prediction(request: Request) -> JSONResponse:
    """GET /v1/predictions/{prediction_id}."""
    job = _find(request)
    now = request.app.state.clock()
    job.observe(now)
    return JSONResponse(prediction_object(request, job, now))


@replicate_endpoint("predictions.cancel")
async def cancel_prediction(request: Request) -> JSONResponse:
    """POST /v1/predictions/{prediction_id}/cancel; a finished prediction stays as it is."""
    job = _find(request)
    now = request.app.state.clock()
    job.cancel(now)
    return JSONResponse(prediction_object(request, job, now))


routes = [
    Route("/v1/predictions", create_prediction, methods=["POST"]),
    Route("/v1/models/{owner}/{name}/predictions", create_model_prediction, methods=["POST"]),
    Route(
        "/v1/predictions/{prediction_id}",
        get_prediction,
        methods=["GET"],
        name="get_prediction",
    ),
    Route("/v1/predictions/{prediction_id}/cancel", cancel_prediction, methods=["POST"]),
]


def _start(request: Request, model: str, version: str, body: dict[str, Any]) -> JSONResponse:
    """Start a prediction; one created with `webhook` sends the events its filter asks for."""
    state = request.app.state
    input = body["input"]
    events = replicate_webhooks.events_filter(body.get("webhook_events_filter"))
    prediction_id = base64.b32encode(secrets.token_bytes(16)).decode().lower().rstrip("=")
    prompt = input.get("prompt")
    fails = isinstance(prompt, str) and bool(FAILING_WORD.search(prompt))
    params = {"model": model, "version": version, "input": input}
    job = start_job(state, prediction_id, "prediction", params, fails)
    if isinstance(webhook := body.get("webhook"), str) and webhook:
        body_of = functools.partial(prediction_object, request)
        replicate_webhooks.schedule(request, job, webhook, events, body_of)
    return JSONResponse(prediction_object(request, job, state.clock()), status_code=201)


def _find(request: Request) -> Job:
    job = request.app.state.jobs.get(request.path_params["prediction_id"])
    if job is None or job.kind != "prediction":
        raise not_found()
    return job


def _logs(job: Job, now: float) -> str:
    seed = int.from_bytes(hashlib.sha256(job.id.encode()).digest()[:2])
    running = job.finishes_at - job.started_at
    elapsed = min(max(now - job.started_at, 0.0), running)
    if job.canceled_at is not None:
        elapsed = min(elapsed, job.canceled_at - job.started_at)
    done = STEPS if running <= 0 else int(STEPS * elapsed / running)
    lines = [f"Using seed: {seed}"]
    for step in range(LOGGED_EVERY, done + 1, LOGGED_EVERY):
        percent = 100 * step // STEPS
        lines.append(f"{percent:3d}%|{'#' * (percent // 10):<10}| {step}/{STEPS}")
    return "\n".join(lines) + "\n"


def _outputs(request: Request, job: Job) -> list[str]:
    count = job.params["input"].get("num_outputs", 1)
    if isinstance(count, bool) or not isinstance(count, int):
        count = 1
    count = min(max(count, 1), MAX_OUTPUTS)
    return [file_url(request, f"{job.id}-{index}.png") for index in range(count)]


def _timestamp(timestamp: float) -> str:
    moment = datetime.datetime.fromtimestamp(timestamp, datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _field(kind: str, field: str, description: str) -> dict[str, str]:
    return {"type": kind, "field": field, "description": description}


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return {str: "string", list: "array"}.get(type(value), "object")
