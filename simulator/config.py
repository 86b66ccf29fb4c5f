"""How a simulator instance behaves."""

from typing import Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from simulator.faults import FaultRule


class SimConfig(BaseModel):
    """Behaviour knobs of one simulator app.

    The app reads its config on every request, so changing a field on a running
    server, directly or through `POST /_sim/config`, takes effect immediately.
    """

    model_config = ConfigDict(
        use_attribute_docstrings=True, validate_assignment=True, extra="forbid"
    )

    latency_ms: float = Field(default=0, ge=0)
    """Added to every request before answering."""
    api_key: str | None = None
    """The only API key accepted; when None any non-empty key is."""
    echo_keys: bool = False
    """Quote a rejected key in full in the 401, as some OpenAI-compatible servers do."""
    rpm_limit: int = Field(default=10_000, ge=1)
    """Requests per minute, enforced per API key and protocol family."""
    tpm_limit: int = Field(default=2_000_000, ge=1)
    """Tokens per minute (OpenAI) or input tokens per minute (Anthropic), per API key."""
    otpm_limit: int = Field(default=400_000, ge=1)
    """Output tokens per minute per API key (Anthropic)."""
    max_context_tokens: int = Field(default=16_384, ge=1)
    """Prompt plus completion tokens a single request may use."""
    seed: int = 0
    """Seeds the job-duration and fault RNGs at start and on every reset."""
    time_scale: float = Field(default=1.0, gt=0)
    """Multiplies every job duration: 0.001 runs a 100 s job in 0.1 s."""
    duration_median_s: float = Field(default=100.0, gt=0)
    """Median of the lognormal distribution job durations are drawn from."""
    duration_sigma: float = Field(default=0.6, ge=0)
    """Spread (sigma of the underlying normal) of job durations."""
    duration_min_s: float = Field(default=20.0, ge=0)
    """Shortest job duration, before time_scale."""
    duration_max_s: float = Field(default=600.0, ge=0)
    """Longest job duration, before time_scale."""
    fixed_duration_s: float | None = Field(default=None, ge=0)
    """When set, every job takes exactly this long (before time_scale) instead of a draw."""
    runway_concurrency: int | None = Field(default=None, ge=1)
    """Unfinished Runway tasks a key may have before new ones are THROTTLED; None: no limit."""
    faults: list[FaultRule] = Field(default_factory=list)
    """Failures to inject, first matching rule first."""

    @model_validator(mode="after")
    def _ordered_durations(self) -> Self:
        if self.duration_min_s > self.duration_max_s:
            raise ValueError("duration_min_s must not exceed duration_max_s")
        return self
