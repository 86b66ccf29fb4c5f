"""fal's queue API, as the `fal-client` SDK calls it, served under /fal (the queue host's root).

POST /fal/{app id}[?fal_webhook=URL]                    submit; the app id may have a sub-path
GET  /fal/{owner}/{alias}/requests/{id}/status[?logs=1]  IN_QUEUE, IN_PROGRESS or COMPLETED
GET  /fal/{owner}/{alias}/requests/{id}                  the result once COMPLETED
PUT  /fal/{owner}/{alias}/requests/{id}/cancel           202, or 400 once completed

Status, result and cancel drop the app id's sub-path, as fal's URLs do. Being under /fal keeps
the catch-all submit path from shadowing other providers' routes. A prompt containing "fail"
ends COMPLETED with an error; a cancelled request reads COMPLETED with an error too.
"""

import datetime
import json
import re
import uuid
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route

from simulator import fal_webhooks
from simulator.fal_protocol import FalError, fal_endpoint, not_found, validation_error
from simulator.files import MP4, file_url
from simulator.jobs import Job, Phase, start_job

KIND = "fal"
FAILING_WORD = re.compile(r"fail", re.IGNORECASE)
DURATION = re.compile(r"\d{1,2}s?")
FAILURE = "Generation failed: the simulator fails every prompt containing 'fail'."
FAILURE_TYPE = "runner_server_error"
CANCELLED = "Request was cancelled."
LOG_STEPS = 10
TRUTHY = ("1", "true", "yes")


def parse_input(raw: bytes) -> dict[str, Any]:
    """The JSON input, checked as a fal video app's schema does: a prompt, an optional duration."""
    try:
        body = json.loads(raw)
    except ValueError:
        raise validation_error(["body"], "JSON decode error", "json_invalid") from None
    if not isinstance(body, dict):
        raise validation_error(["body"], "Input should be a valid dictionary", "dict_type")
    prompt = body.get("prompt")
    if prompt is None:
        raise validation_error(["body", "prompt"], "Field required", "missing")
    if not isinstance(prompt, str) or not prompt.strip():
        raise validation_error(["body", "prompt"], "Input should be a valid string", "string_type")
    duration = body.get("duration")
    if duration is not None and not DURATION.fullmatch(str(duration)):
        message = "Input should be a number of seconds, like '8s'"
        raise validation_error(["body", "duration"], message, "value_error")
    return body


def app_root(app_id: str) -> str:
    """The owner/alias part of an app id, which status, result and cancel URLs use."""
    return "/".join(app_id.split("/")[:2])


def request_urls(request: Request, job: Job) -> dict[str, str]:
    """The request's id and the URLs the SDK follows."""
    owner, alias = job.params["root"].split("/")
    base = str(request.url_for("fal_result", owner=owner, alias=alias, request_id=job.id))
    return {
        "request_id": job.id,
        "response_url": base,
        "status_url": f"{base}/status",
        "cancel_url": f"{base}/cancel",
    }


def queue_position(jobs: dict[str, Job], job: Job, now: float) -> int:
    """How many fal requests still queued will start before this one (on a tie, the older)."""
    ahead, after = 0, False
    for other in jobs.values():
        if other is job:
            after = True
        elif other.kind == KIND and other.phase(now) is Phase.QUEUED:
            ahead += (other.started_at, after) < (job.started_at, True)
    return ahead


def status_object(request: Request, job: Job, now: float, logs: bool) -> dict[str, Any]:
    """The request's status as fal's queue reports it at the instant now."""
    phase = job.phase(now)
    body: dict[str, Any] = {**request_urls(request, job), "logs": None, "metrics": {}}
    if phase is Phase.QUEUED:
        position = queue_position(request.app.state.jobs, job, now)
        body.update(status="IN_QUEUE", queue_position=position)
        return body
    if logs:
        body["logs"] = _logs(job, now)
    if phase is Phase.RUNNING:
        body["status"] = "IN_PROGRESS"
        return body
    body["status"] = "COMPLETED"
    if phase is Phase.SUCCEEDED:
        body["metrics"] = {"inference_time": round(job.finishes_at - job.started_at, 6)}
    elif phase is Phase.FAILED:
        body.update(error=FAILURE, error_type=FAILURE_TYPE)
    else:
        body["error"] = CANCELLED
    return body


def result_body(request: Request, job: Job) -> dict[str, Any]:
    """A finished video app's output."""
    name = f"{job.id}.mp4"
    video = {
        "url": file_url(request, name),
        "content_type": "video/mp4",
        "file_name": name,
        "file_size": len(MP4),
    }
    return {"video": video}


def webhook_body(request: Request, job: Job, now: float) -> dict[str, Any]:
    """What fal posts for a completed request: status OK with the output, or ERROR."""
    body: dict[str, Any] = {"request_id": job.id, "gateway_request_id": job.id}
    phase = job.phase(now)
    if phase is Phase.SUCCEEDED:
        return {**body, "status": "OK", "payload": result_body(request, job)}
    error = FAILURE if phase is Phase.FAILED else CANCELLED
    return {**body, "status": "ERROR", "error": error, "payload": {"detail": error}}


@fal_endpoint("fal.submit")
async def submit(request: Request) -> JSONResponse:
    """POST /fal/{app id}: queue a request, optionally with a webhook for its completion."""
    app_id = request.path_params["app_id"].strip("/")
    if app_id.count("/") < 1:
        raise FalError(404, f"Application '{app_id}' not found")
    input = parse_input(await request.body())
    state = request.app.state
    key = request.headers["authorization"].partition(" ")[2].strip()
    params = {"app": app_id, "root": app_root(app_id), "input": input}
    fails = bool(FAILING_WORD.search(input["prompt"]))
    job = start_job(state, str(uuid.uuid4()), KIND, params, fails)
    if webhook := request.query_params.get("fal_webhook"):
        fal_webhooks.schedule(
            request, job, webhook, key, lambda job, now: webhook_body(request, job, now)
        )
    now = state.clock()
    return JSONResponse(
        {
            "status": "IN_QUEUE",
            **request_urls(request, job),
            "gateway_request_id": job.id,
            "queue_position": queue_position(state.jobs, job, now),
        }
    )


@fal_endpoint("fal.status")
async def get_status(request: Request) -> JSONResponse:
    """GET …/requests/{id}/status, with logs when `logs` is 1 or true."""
    job = _find(request)
    now = request.app.state.clock()
    job.observe(now)
    logs = request.query_params.get("logs", "").lower() in TRUTHY
    return JSONResponse(status_object(request, job, now, logs))


@fal_endpoint("fal.result")
async def get_result(request: Request) -> JSONResponse:
    """GET …/requests/{id}: the output, or the error the request ended with."""
    job = _find(request)
    phase = job.phase(request.app.state.clock())
    if phase is Phase.SUCCEEDED:
        return JSONResponse(result_body(request, job))
    if phase is Phase.FAILED:
        raise FalError(500, FAILURE, FAILURE_TYPE)
    if phase is Phase.CANCELED:
        raise FalError(400, CANCELLED)
    raise FalError(400, "Request is still in progress")


@fal_endpoint("fal.cancel")
async def cancel(request: Request) -> JSONResponse:
    """PUT …/requests/{id}/cancel: stop a request that has not completed."""
    job = _find(request)
    now = request.app.state.clock()
    if job.finished_at(now) is not None:
        return JSONResponse({"status": "ALREADY_COMPLETED"}, status_code=400)
    job.cancel(now)
    return JSONResponse({"status": "CANCELLATION_REQUESTED"}, status_code=202)


REQUEST = "/{owner}/{alias}/requests/{request_id}"
routes = [
    Mount(
        "/fal",
        routes=[
            Route(REQUEST + "/status", get_status, methods=["GET"]),
            Route(REQUEST + "/cancel", cancel, methods=["PUT"]),
            Route(REQUEST, get_result, methods=["GET"], name="fal_result"),
            Route("/{app_id:path}", submit, methods=["POST"]),
        ],
    ),
    *fal_webhooks.routes,
]


def _find(request: Request) -> Job:
    params = request.path_params
    job = request.app.state.jobs.get(params["request_id"])
    root = f"{params['owner']}/{params['alias']}"
    if job is None or job.kind != KIND or job.params["root"] != root:
        raise not_found(params["request_id"])
    return job


def _logs(job: Job, now: float) -> list[dict[str, str]]:
    running = job.finishes_at - job.started_at
    end = min(now, job.canceled_at or now, job.finishes_at)
    done = LOG_STEPS if running <= 0 else int(LOG_STEPS * max(end - job.started_at, 0) / running)
    return [
        {
            "message": f"Generating video: {100 * step // LOG_STEPS}%",
            "level": "INFO",
            "source": "user",
            "timestamp": _timestamp(job.started_at + running * step / LOG_STEPS),
        }
        for step in range(1, done + 1)
    ]


def _timestamp(moment: float) -> str:
    return datetime.datetime.fromtimestamp(moment, datetime.UTC).isoformat()
