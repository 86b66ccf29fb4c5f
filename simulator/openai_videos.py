"""OpenAI's video generation endpoints under /v1/videos: create, poll, download, delete, list."""

import re
import secrets
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from simulator.files import MEDIA
from simulator.forms import parse_multipart
from simulator.jobs import FINAL, Job, Phase, start_job
from simulator.openai_models import VIDEO_MODELS
from simulator.openai_protocol import (
    UNPARSABLE_BODY_MESSAGE,
    OpenAIError,
    integer_param,
    invalid_request,
    invalid_type,
    invalid_value,
    openai_endpoint,
    read_json_object,
    required_string,
    unknown_parameter,
)

PARAMETERS = frozenset({"input_reference", "model", "prompt", "seconds", "size"})
SECONDS = ("4", "8", "12")
SIZES = ("720x1280", "1280x720", "1024x1792", "1792x1024")
VARIANTS = {"video": ".mp4", "thumbnail": ".webp", "spritesheet": ".jpg"}
STATUSES = {
    Phase.QUEUED: "queued",
    Phase.RUNNING: "in_progress",
    Phase.SUCCEEDED: "completed",
    Phase.FAILED: "failed",
}
EXPIRY_S = 24 * 3600
MIN_POLL_S = 1.0
MAX_POLL_S = 10.0
DEFAULT_PAGE = 20
MAX_PAGE = 100
FAILING_WORD = re.compile(r"fail", re.IGNORECASE)


async def read_fields(request: Request) -> dict[str, Any]:
    """The request's fields, sent as multipart/form-data (as the SDK does) or as JSON."""
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith("multipart/form-data"):
        return await read_json_object(request)
    try:
        return parse_multipart(await request.body(), content_type)
    except ValueError:
        raise invalid_request(UNPARSABLE_BODY_MESSAGE) from None


def parse_video_request(fields: dict[str, Any]) -> dict[str, str]:
    """Validate the fields as OpenAI does: the video's model, prompt, seconds and size."""
    for name in fields:
        if name not in PARAMETERS:
            raise unknown_parameter(name)
    prompt = required_string(fields, "prompt", "prompt")
    chosen = {}
    for name, supported in (("model", tuple(VIDEO_MODELS)), ("seconds", SECONDS), ("size", SIZES)):
        value = fields.get(name, supported[0])
        if not isinstance(value, str):
            raise invalid_type(name, "a string", value)
        if value not in supported:
            raise invalid_value(name, value, supported)
        chosen[name] = value
    return {"prompt": prompt, **chosen}


def video_object(job: Job, now: float) -> dict[str, Any]:
    """The video as OpenAI describes it at the instant now."""
    phase = job.phase(now)
    completed_at = int(job.finishes_at) if phase in FINAL else None
    error = None
    if phase is Phase.FAILED:
        error = {
            "code": "video_generation_failed",
            "message": "Video generation failed: the simulator fails every prompt with 'fail'.",
        }
    return {
        "id": job.id,
        "object": "video",
        "model": job.params["model"],
        "status": STATUSES[phase],
        "progress": 100 if phase in FINAL else min(int(job.progress(now) * 100), 99),
        "created_at": int(job.created_at),
        "completed_at": completed_at,
        "expires_at": completed_at + EXPIRY_S if phase is Phase.SUCCEEDED else None,
        "prompt": job.params["prompt"],
        "seconds": job.params["seconds"],
        "size": job.params["size"],
        "quality": "standard",
        "remixed_from_video_id": None,
        "error": error,
    }


def poll_after_ms(job: Job, now: float, time_scale: float) -> str:
    """How long a poller should wait: a quarter of what is left, within 1 to 10 scaled seconds."""
    remaining = max(job.finishes_at - now, 0.0) / 4
    wait = min(max(remaining, MIN_POLL_S * time_scale), MAX_POLL_S * time_scale)
    return str(max(round(wait * 1000), 1))


@openai_endpoint("videos.create")
async def create_video(request: Request) -> JSONResponse:
    """POST /v1/videos: queue a video, which completes over its drawn duration."""
    params = parse_video_request(await read_fields(request))
    state = request.app.state
    video_id = f"video_{secrets.token_hex(24)}"
    fails = bool(FAILING_WORD.search(params["prompt"]))
    job = start_job(state, video_id, "video", params, fails)
    return _answer(request, job)


@openai_endpoint("videos.retrieve")
async def retrieve_video(request: Request) -> JSONResponse:
    """GET /v1/videos/{video_id}, with a poll-interval hint."""
    job = _find(request)
    job.observe(request.app.state.clock())
    return _answer(request, job)


@openai_endpoint("videos.content")
async def download_content(request: Request) -> Response:
    """GET /v1/videos/{video_id}/content?variant=video|thumbnail|spritesheet, once completed."""
    job = _find(request)
    variant = request.query_params.get("variant", "video")
    if variant not in VARIANTS:
        raise invalid_value("variant", variant, tuple(VARIANTS))
    if job.phase(request.app.state.clock()) is not Phase.SUCCEEDED:
        message = f"Video is not ready yet, use GET /v1/videos/{job.id} to check status."
        raise OpenAIError(404, message)
    content, media_type = MEDIA[VARIANTS[variant]]
    return Response(content, media_type=media_type)


@openai_endpoint("videos.delete")
async def delete_video(request: Request) -> JSONResponse:
    """DELETE /v1/videos/{video_id}: cancel it if still running, and forget it."""
    job = _find(request)
    now = request.app.state.clock()
    job.cancel(now)
    job.deleted_at = now
    return JSONResponse({"id": job.id, "object": "video.deleted", "deleted": True})


@openai_endpoint("videos.list")
async def list_videos(request: Request) -> JSONResponse:
    """GET /v1/videos?after=&limit=&order=, newest first by default."""
    state = request.app.state
    query = request.query_params
    limit_text = query.get("limit", str(DEFAULT_PAGE))
    if not limit_text.isdigit():
        raise invalid_type("limit", "an integer", limit_text)
    limit = integer_param({"limit": int(limit_text)}, "limit", 1, MAX_PAGE) or DEFAULT_PAGE
    order = query.get("order", "desc")
    if order not in ("asc", "desc"):
        raise invalid_value("order", order, ("asc", "desc"))
    videos = [job for job in state.jobs.values() if job.kind == "video" and job.deleted_at is None]
    videos.sort(key=lambda job: job.created_at, reverse=order == "desc")
    ids = [job.id for job in videos]
    if after := query.get("after"):
        videos = videos[ids.index(after) + 1 :] if after in ids else []
    page = videos[:limit]
    now = state.clock()
    return JSONResponse(
        {
            "object": "list",
            "data": [video_object(job, now) for job in page],
            "first_id": page[0].id if page else None,
            "last_id": page[-1].id if page else None,
            "has_more": len(videos) > limit,
        }
    )


routes = [
    Route("/v1/videos", create_video, methods=["POST"]),
    Route("/v1/videos", list_videos, methods=["GET"]),
    Route("/v1/videos/{video_id}", retrieve_video, methods=["GET"]),
    Route("/v1/videos/{video_id}", delete_video, methods=["DELETE"]),
    Route("/v1/videos/{video_id}/content", download_content, methods=["GET"]),
]


def _find(request: Request) -> Job:
    video_id = request.path_params["video_id"]
    job = request.app.state.jobs.get(video_id)
    if job is None or job.kind != "video" or job.deleted_at is not None:
        raise OpenAIError(404, f"Video with id '{video_id}' not found.", param="video_id")
    return job


def _answer(request: Request, job: Job) -> JSONResponse:
    state = request.app.state
    now = state.clock()
    hint = poll_after_ms(job, now, state.config.time_scale)
    return JSONResponse(video_object(job, now), headers={"openai-poll-after-ms": hint})
