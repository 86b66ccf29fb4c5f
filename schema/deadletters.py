"""Dead-letter contracts for the on-call engineer's tools: the filter that selects letters,
and the views of letters, actions, counts and audit entries that the CLI and the admin API
show."""

import re
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, computed_field, field_validator
from pydantic_core import PydanticCustomError

from schema.clean import CleanStr, bounded_time
from schema.tables import utcnow

Status = Literal["open", "requeued", "purged", "all"]
Bucket = Literal["hour", "day"]

_DURATION = re.compile(r"(\d{1,6})([mhdw])")
_UNIT_S = {"m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """``15m``, ``2h``, ``3d`` or ``1w`` ago, or an ISO time (UTC when it names no zone),
    within ``schema.clean``'s time bounds."""
    text = text.strip()
    match = _DURATION.fullmatch(text)
    try:
        if match:
            moment = (now or utcnow()) - timedelta(seconds=int(match[1]) * _UNIT_S[match[2]])
        else:
            moment = datetime.fromisoformat(text)
    except OverflowError:
        raise ValueError(f"since {text!r} is out of range: it reaches before year 1") from None
    except ValueError:
        raise ValueError(
            "since must be a duration such as 2h or 3d, or an ISO time such as "
            f"2026-01-01T00:00; got {text!r}"
        ) from None
    try:
        return bounded_time(moment)
    except ValueError as exc:
        raise ValueError(f"since {exc}") from None


class DLQFilter(BaseModel):
    """Which dead letters: every field given must match."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    route: CleanStr | None = Field(None, min_length=1, max_length=100)
    tenant: CleanStr | None = Field(None, min_length=1, max_length=200, description="Id or name.")
    error_class: CleanStr | None = Field(None, min_length=1, max_length=50)
    source: Literal["job", "dramatiq"] | None = None
    text: CleanStr | None = Field(
        None, min_length=1, max_length=200, description="Found in the error message (any case)."
    )
    since: datetime | None = Field(
        None, description="Last failed at or after: an ISO time, or a duration ago (2h, 3d)."
    )
    status: Status = "open"

    @field_validator("since", mode="before")
    @classmethod
    def _duration_or_time(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        try:
            return parse_since(value)
        except ValueError as exc:
            raise PydanticCustomError("since", str(exc)) from None

    @field_validator("since")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        try:
            return bounded_time(value)
        except ValueError as exc:
            raise PydanticCustomError("since", f"since {exc}") from None

    def describe(self) -> dict[str, Any]:
        """The fields given, as JSON, for the audit log."""
        return self.model_dump(mode="json", exclude_defaults=True) | {"status": self.status}


Target = Sequence[str] | DLQFilter


class LetterView(BaseModel):
    """A dead letter as an operator sees it, with whom it concerns and where its job is."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    source: str
    status: str
    job_id: str | None
    job_status: str | None = None
    tenant_id: str | None
    tenant_name: str | None = None
    route: str | None
    model: str | None
    queue_name: str | None
    actor_name: str | None
    error_class: str
    error_message: str
    attempts: list[dict[str, Any]]
    message: dict[str, Any] | None
    first_failed_at: datetime
    last_failed_at: datetime
    created_at: datetime
    resolved_at: datetime | None


class ActionResult(BaseModel):
    """What an action did (or, for a dry run, would do), and why it passed over the rest."""

    action: str
    dry_run: bool
    targets: list[str]
    skipped: dict[str, str] = Field(default_factory=dict)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def count(self) -> int:
        return len(self.targets)


class StatsRow(BaseModel):
    key: str
    count: int
    open: int


class StatsBucket(BaseModel):
    start: datetime
    count: int


class DLQStats(BaseModel):
    """Dead letters that last failed since ``since``, whatever became of them since."""

    since: datetime
    bucket: Bucket
    total: int
    open: int
    by_route: list[StatsRow]
    by_error_class: list[StatsRow]
    over_time: list[StatsBucket]


class AuditView(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    actor: str
    action: str
    filter: dict[str, Any] | None
    targets: list[str]
    count: int
    dry_run: bool
    at: datetime
