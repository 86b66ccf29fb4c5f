"""Job models of the public API: what a producer sends and what it gets back."""

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, HttpUrl

from schema.clean import CleanJson, CleanStr


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    WAITING = "waiting"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"
    DEAD_LETTERED = "dead_lettered"


TERMINAL_STATUSES = frozenset(
    {JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELED, JobStatus.DEAD_LETTERED}
)


class WebhookEventType(StrEnum):
    """Job events. ``job.started`` (an async job accepted by its provider) is sent only to
    those who list it: most receivers want results, not progress."""

    STARTED = "job.started"
    SUCCEEDED = "job.succeeded"
    FAILED = "job.failed"
    CANCELED = "job.canceled"


MetadataValue = str | int | float | bool | None


class JobCreate(BaseModel):
    """A generation job as a producer submits it."""

    model_config = ConfigDict(extra="forbid")

    model: CleanStr = Field(
        min_length=3,
        max_length=200,
        description="'<route>/<model>', e.g. 'openai/gpt-4o-mini'.",
        examples=["openai/gpt-4o-mini"],
    )
    input: Annotated[dict[str, Any], CleanJson] = Field(
        description="Provider-shaped input, e.g. messages and max_tokens for chat; plain JSON "
        "(no NaN or Infinity, integers within 64 bits, at most 32 levels deep).",
        examples=[{"messages": [{"role": "user", "content": "Hello"}], "max_tokens": 64}],
    )
    metadata: Annotated[dict[str, MetadataValue], CleanJson] = Field(
        default_factory=dict, max_length=50, description="Your own keys, returned as given."
    )
    webhook_url: HttpUrl | None = Field(None, description="Where to POST the result.")
    webhook_events: list[WebhookEventType] | None = Field(
        None, description="Event types to send to webhook_url; all when omitted."
    )
    cache: bool = Field(
        True, description="Serve an identical earlier request from the result cache."
    )
    deadline_s: int | None = Field(
        None, ge=1, le=7 * 86_400, description="Give up (failed) if not done this many seconds."
    )


class BatchItem(JobCreate):
    idempotency_key: CleanStr | None = Field(None, min_length=1, max_length=255)


class BatchCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    jobs: list[BatchItem] = Field(min_length=1)


class JobError(BaseModel):
    type: str
    message: str


class JobView(BaseModel):
    """A job as the API returns it."""

    object: Literal["job"] = "job"
    id: str
    status: JobStatus
    kind: str
    model: str
    route: str
    input: dict[str, Any]
    metadata: dict[str, MetadataValue]
    webhook_url: str | None
    webhook_events: list[str] | None
    output: dict[str, Any] | None
    usage: dict[str, Any] | None
    cost_usd: float = Field(description="What the job cost so far, in US dollars.")
    cached: bool = Field(description="Served from the result cache, without a provider call.")
    served_by: str | None = Field(description="The '<route>/<model>' that produced the output.")
    progress: float | None = Field(None, description="Percent done, for long async jobs.")
    deadline_at: datetime | None = None
    error: JobError | None
    attempts: int
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class JobPage(BaseModel):
    object: Literal["list"] = "list"
    data: list[JobView]
    next_cursor: str | None = Field(None, description="Pass as ?cursor= to get the next page.")


class BatchView(BaseModel):
    object: Literal["list"] = "list"
    data: list[JobView]
