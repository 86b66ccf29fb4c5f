"""Runway's task API: start a generation, read its task, cancel or delete it.

POST   /v1/text_to_video, /v1/image_to_video  -> 200 {"id": <uuid>, "estimatedCost"}
GET    /v1/tasks/{id}                          -> the task: PENDING, THROTTLED, RUNNING
                                                  (progress 0..1), SUCCEEDED (output URLs),
                                                  FAILED (failure, failureCode), CANCELLED
DELETE /v1/tasks/{id}                          -> 204; cancels an unfinished task, deletes a
                                                  finished one (it then reads CANCELLED)

Output URLs are signed and expire OUTPUT_URL_TTL_S after they are issued (Runway documents
24-48 hours); every read of the task issues fresh ones, as Runway's do.

With ``SimConfig.runway_concurrency`` set, a key's tasks beyond that many unfinished ones
are THROTTLED until a slot frees: their timeline starts then. A prompt containing
"forbidden" fails with SAFETY.INPUT.TEXT, one containing "fail" with
INTERNAL.BAD_OUTPUT.CODE01, and an image URL containing "invalid" with ASSET.INVALID.
"""

import base64
import datetime
import hashlib
import hmac
import json
import uuid
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from simulator.durations import job_duration
from simulator.files import MP4
from simulator.jobs import FINAL, Job, Phase
from simulator.runway_bodies import CREDITS_PER_SECOND, parse_task_body
from simulator.runway_protocol import error, runway_endpoint

KIND = "runway_task"
OUTPUT_URL_TTL_S = 86_400
SIGNING_KEY = b"genq-simulator-runway-outputs"
FAILURES = (
    ("forbidden", "SAFETY.INPUT.TEXT", "The prompt text was rejected by content moderation."),
    ("fail", "INTERNAL.BAD_OUTPUT.CODE01", "The generation was rejected for quality reasons."),
)
ASSET_FAILURE = ("ASSET.INVALID", "The input image could not be processed.")
STATUSES = {
    Phase.QUEUED: "PENDING",
    Phase.RUNNING: "RUNNING",
    Phase.SUCCEEDED: "SUCCEEDED",
    Phase.FAILED: "FAILED",
    Phase.CANCELED: "CANCELLED",
}


@runway_endpoint("text_to_video.create")
async def text_to_video(request: Request) -> JSONResponse:
    """POST /v1/text_to_video."""
    return _start(request, parse_task_body(await request.body(), image=False))


@runway_endpoint("image_to_video.create")
async def image_to_video(request: Request) -> JSONResponse:
    """POST /v1/image_to_video."""
    return _start(request, parse_task_body(await request.body(), image=True))


@runway_endpoint("tasks.retrieve")
async def retrieve_task(request: Request) -> JSONResponse:
    """GET /v1/tasks/{id}."""
    job = _find(request)
    now = request.app.state.clock()
    job.observe(now)
    return JSONResponse(task_object(request, job, now))


@runway_endpoint("tasks.delete")
async def delete_task(request: Request) -> Response:
    """DELETE /v1/tasks/{id}: cancel a task still to finish, or delete a finished one."""
    job = _find(request)
    now = request.app.state.clock()
    if job.phase(now) in FINAL:
        job.deleted_at = job.deleted_at or now
    job.cancel(now)
    return Response(status_code=204)


async def get_output(request: Request) -> Response:
    """An output URL: the video while its signature holds, 403 once it has expired."""
    claims = _verified(request.query_params.get("_jwt", ""))
    task_id = request.path_params["name"].removesuffix(".mp4")
    if claims is None or claims.get("sub") != task_id:
        return Response("Forbidden", status_code=403)
    if request.app.state.clock() >= claims["exp"]:
        return Response("Forbidden: the URL has expired", status_code=403)
    return Response(MP4, media_type="video/mp4")


routes = [
    Route("/v1/text_to_video", text_to_video, methods=["POST"]),
    Route("/v1/image_to_video", image_to_video, methods=["POST"]),
    Route("/v1/tasks/{task_id}", retrieve_task, methods=["GET"]),
    Route("/v1/tasks/{task_id}", delete_task, methods=["DELETE"]),
    Route("/_sim/runway/outputs/{name}", get_output, methods=["GET"], name="runway_output"),
]


def task_object(request: Request, job: Job, now: float) -> dict[str, Any]:
    """The task as Runway describes it at the instant now."""
    params = job.params
    phase = job.phase(now)
    task: dict[str, Any] = {"id": job.id, "createdAt": _timestamp(params["submitted_at"])}
    credits = CREDITS_PER_SECOND[params["model"]] * params["duration"]
    if phase is Phase.CANCELED:
        charged = job.canceled_at is not None and job.canceled_at >= job.started_at
        return {**task, "status": "CANCELLED", "cost": {"credits": credits if charged else 0}}
    if job.deleted_at is not None:
        charged = phase is Phase.SUCCEEDED
        return {**task, "status": "CANCELLED", "cost": {"credits": credits if charged else 0}}
    if phase is Phase.SUCCEEDED:
        output = [_output_url(request, job.id, now)]
        return {**task, "status": "SUCCEEDED", "cost": {"credits": credits}, "output": output}
    if phase is Phase.FAILED:
        code, failure = params["failure"]
        failed = {"status": "FAILED", "cost": {"credits": 0}, "failure": failure}
        return {**task, **failed, "failureCode": code}
    task["estimatedCost"] = {"credits": credits}
    if phase is Phase.RUNNING:
        running = job.finishes_at - job.started_at
        done = (now - job.started_at) / running if running > 0 else 1.0
        return {**task, "status": "RUNNING", "progress": round(min(max(done, 0.0), 1.0), 2)}
    return {**task, "status": "THROTTLED" if now < job.created_at else "PENDING"}


def _start(request: Request, body: dict[str, Any]) -> JSONResponse:
    state = request.app.state
    now = state.clock()
    key = request.headers["authorization"].partition(" ")[2].strip()
    failure = _failure(body)
    params = {
        "model": body["model"],
        "duration": body["duration"],
        "submitted_at": now,
        "key_digest": hashlib.sha256(key.encode()).hexdigest(),
        "failure": failure,
    }
    starts_at = _slot_at(state.jobs.values(), params["key_digest"], now, state.config)
    task_id = str(uuid.uuid4())
    duration = job_duration(state.config, state.job_rng)
    state.jobs[task_id] = Job(task_id, KIND, params, starts_at, duration, failure is not None)
    credits = CREDITS_PER_SECOND[body["model"]] * body["duration"]
    return JSONResponse({"id": task_id, "estimatedCost": {"credits": credits}})


def _slot_at(jobs: Any, key_digest: str, now: float, config: Any) -> float:
    """When a new task of the key may start: now, or when enough of its unfinished tasks end
    to leave it a slot under the account's concurrency."""
    limit = config.runway_concurrency
    if limit is None:
        return now
    ends = sorted(
        job.finishes_at
        for job in jobs
        if job.kind == KIND
        and job.params["key_digest"] == key_digest
        and job.phase(now) not in FINAL
    )
    return now if len(ends) < limit else ends[len(ends) - limit]


def _failure(body: dict[str, Any]) -> tuple[str, str] | None:
    text = str(body.get("promptText") or "").lower()
    for word, code, failure in FAILURES:
        if word in text:
            return code, failure
    image = body.get("promptImage")
    uris = [image] if isinstance(image, str) else [part["uri"] for part in image or []]
    return ASSET_FAILURE if any("invalid" in uri for uri in uris) else None


def _find(request: Request) -> Job:
    job = request.app.state.jobs.get(request.path_params["task_id"])
    if job is None or job.kind != KIND:
        raise error(404, "Task not found.")
    return job


def _output_url(request: Request, task_id: str, now: float) -> str:
    url = str(request.url_for("runway_output", name=f"{task_id}.mp4"))
    return f"{url}?_jwt={_signed({'sub': task_id, 'exp': now + OUTPUT_URL_TTL_S})}"


def _signed(claims: dict[str, Any]) -> str:
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    payload = _b64(json.dumps(claims).encode())
    mac = hmac.new(SIGNING_KEY, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{_b64(mac)}"


def _verified(token: str) -> dict[str, Any] | None:
    header, _, rest = token.partition(".")
    payload, _, signature = rest.partition(".")
    mac = hmac.new(SIGNING_KEY, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    if not hmac.compare_digest(_b64(mac), signature):
        return None
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except ValueError:
        return None
    return claims if isinstance(claims, dict) else None


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _timestamp(timestamp: float) -> str:
    moment = datetime.datetime.fromtimestamp(timestamp, datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
