"""The result shapes every adapter returns: one for a call, one for a poll of an async job."""

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from workers.providers.errors import ProviderError


@dataclass(frozen=True)
class ProviderResult:
    """A finished call: normalized output and usage, plus what the provider said about it.

    Usage keys: input_tokens, output_tokens, total_tokens, images, video_seconds,
    predict_seconds (whichever apply).
    """

    output: dict[str, Any]
    usage: dict[str, float]
    request_id: str | None
    http_status: int
    rate_limit_headers: dict[str, str] = field(default_factory=dict)


class AsyncState(StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"


@dataclass(frozen=True)
class PollResult:
    """Where an async provider job stands, and when the provider suggests asking again."""

    provider_job_id: str
    state: AsyncState
    request_id: str | None
    http_status: int
    progress: float | None = None
    queue_position: int | None = None
    """Requests ahead of this one at a provider that queues (fal); None once it started."""
    queued: bool = False
    """The provider says the job has not started yet (fal IN_QUEUE, Replicate starting)."""
    poll_after_s: float | None = None
    result: ProviderResult | None = None
    error: ProviderError | None = None
    rate_limit_headers: dict[str, str] = field(default_factory=dict)
