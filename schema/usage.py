"""Usage and cost reports, for tenants (``GET /v1/usage``) and operators (``genq usage``)."""

from datetime import datetime
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, Field


class GroupBy(StrEnum):
    MODEL = "model"
    DAY = "day"


class UsageRow(BaseModel):
    key: str = Field(description="The '<route>/<model>' or the UTC day (YYYY-MM-DD).")
    attempts: int
    jobs: int
    cache_hits: int
    input_tokens: int
    output_tokens: int
    images: int
    video_seconds: float
    cost_usd: float
    estimated_cost_usd: float = Field(
        0.0, description="Part of cost_usd estimated from requests: attempts of lost workers."
    )


class BudgetView(BaseModel):
    limit_usd: float | None = Field(description="None means no limit.")
    spent_usd: float
    reserved_usd: float = Field(description="Held for jobs still in flight.")
    period: str
    period_start: datetime
    resets_at: datetime


class UsageReport(BaseModel):
    object: Literal["usage"] = "usage"
    start: datetime = Field(serialization_alias="from")
    end: datetime = Field(serialization_alias="to")
    group_by: GroupBy
    data: list[UsageRow]
    total: UsageRow
    budget: BudgetView | None = None
