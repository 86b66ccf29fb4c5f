"""The one result shape every adapter returns."""

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ProviderResult:
    output: dict[str, Any]
    usage: dict[str, int]
    request_id: str | None
    http_status: int
    rate_limit_headers: dict[str, str] = field(default_factory=dict)
