"""How a simulator instance behaves."""

from pydantic import BaseModel, ConfigDict, Field


class SimConfig(BaseModel):
    """Behaviour knobs of one simulator app.

    The app reads its config on every request, so changing a field on a running
    server takes effect immediately.
    """

    model_config = ConfigDict(use_attribute_docstrings=True, validate_assignment=True)

    latency_ms: float = Field(default=0, ge=0)
    """Added to every request before answering."""
    api_key: str | None = None
    """The only Bearer token accepted; when None any non-empty token is."""
    rpm_limit: int = Field(default=10_000, ge=1)
    """Requests per minute advertised in the x-ratelimit-* headers."""
    tpm_limit: int = Field(default=2_000_000, ge=1)
    """Tokens per minute advertised in the x-ratelimit-* headers."""
    max_context_tokens: int = Field(default=16_384, ge=1)
    """Prompt plus completion tokens a single request may use."""
