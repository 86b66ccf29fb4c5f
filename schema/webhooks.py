"""Webhook contracts: event types and bodies, and the endpoint and delivery models of the API.

Bodies follow Standard Webhooks: ``{"type", "timestamp", "data"}``, sent with the
``webhook-id``, ``webhook-timestamp`` and ``webhook-signature`` headers.
"""

from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, model_validator

from schema.clean import CleanStr, Moment
from schema.jobs import WebhookEventType


class EndpointEventType(StrEnum):
    """What an endpoint may subscribe to: job events, and being told another endpoint of
    the tenant was disabled."""

    JOB_STARTED = WebhookEventType.STARTED.value
    JOB_SUCCEEDED = WebhookEventType.SUCCEEDED.value
    JOB_FAILED = WebhookEventType.FAILED.value
    JOB_CANCELED = WebhookEventType.CANCELED.value
    ENDPOINT_DISABLED = "endpoint.disabled"


TEST_EVENT = "webhook.test"
SECRET_PREFIX = "whsec_"


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class EventBody(BaseModel):
    type: str
    timestamp: datetime
    data: dict[str, Any]


class EndpointCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: HttpUrl = Field(description="Where to POST events; must be a public http(s) URL.")
    description: CleanStr = Field("", max_length=500)
    event_types: list[EndpointEventType] | None = Field(
        None,
        min_length=1,
        description="Types to send; omitted means every type but job.started.",
    )
    enabled: bool = True


class EndpointUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: HttpUrl | None = None
    description: CleanStr | None = Field(None, max_length=500)
    event_types: list[EndpointEventType] | None = Field(None, min_length=1)
    enabled: bool | None = Field(None, description="Set true to re-enable a disabled endpoint.")

    @model_validator(mode="after")
    def _not_empty(self) -> "EndpointUpdate":
        if not self.model_fields_set:
            raise ValueError("give at least one of url, description, event_types, enabled")
        return self


class EndpointView(BaseModel):
    object: Literal["webhook_endpoint"] = "webhook_endpoint"
    id: str
    url: str
    description: str
    event_types: list[str] | None
    enabled: bool
    disabled_reason: str | None
    disabled_at: datetime | None
    failing_since: datetime | None
    created_at: datetime
    updated_at: datetime
    secret: str | None = Field(None, description="Shown only when created or rotated.")


class EndpointPage(BaseModel):
    object: Literal["list"] = "list"
    data: list[EndpointView]


class SecretRotate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    grace_s: int | None = Field(
        None,
        ge=0,
        le=7 * 86_400,
        description="How long the old secret keeps signing; the server default if omitted.",
    )


class SecretView(BaseModel):
    object: Literal["webhook_secret"] = "webhook_secret"
    secret: str
    previous_expires_at: datetime | None = Field(
        None, description="Until then, deliveries carry a signature by the old secret too."
    )


class AttemptView(BaseModel):
    number: int
    outcome: str
    status_code: int | None
    response_excerpt: str | None
    error: str | None
    duration_ms: int
    started_at: datetime


class DeliveryView(BaseModel):
    object: Literal["webhook_delivery"] = "webhook_delivery"
    id: str
    webhook_id: str = Field(description="The event's id, the same on every attempt.")
    event_type: str
    job_id: str | None
    endpoint_id: str | None
    url: str
    status: DeliveryStatus
    attempts: int
    next_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None
    attempt_log: list[AttemptView] | None = Field(None, description="Every attempt, oldest first.")


class DeliveryPage(BaseModel):
    object: Literal["list"] = "list"
    data: list[DeliveryView]
    next_cursor: str | None = None


class RecoverRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    since: Moment
    until: Moment | None = None

    @model_validator(mode="after")
    def _ordered(self) -> "RecoverRequest":
        if self.since.tzinfo is None or (self.until and self.until.tzinfo is None):
            raise ValueError("since and until need a time zone, e.g. 2026-01-01T00:00:00Z")
        if self.until is not None and self.until <= self.since:
            raise ValueError("until must come after since")
        return self


class RecoverView(BaseModel):
    object: Literal["webhook_recovery"] = "webhook_recovery"
    resent: int
    delivery_ids: list[str]
