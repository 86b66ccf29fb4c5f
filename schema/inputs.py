"""Provider-shaped job inputs, one model per job kind, checked before a job is stored.

Inputs are validated for what genq relies on and otherwise passed through as given,
so a provider's newer parameters need no change here.
"""

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from schema.routes import JobKind


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[dict[str, Any]] | None


class ChatInput(BaseModel):
    """OpenAI chat-completions style input."""

    model_config = ConfigDict(extra="allow")

    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, ge=0, le=1)
    n: int | None = Field(None, ge=1, le=8)
    stream: bool | None = None

    @field_validator("stream")
    @classmethod
    def _no_streaming(cls, value: bool | None) -> bool | None:
        if value:
            raise ValueError("streaming is not available for queued jobs; omit 'stream'")
        return value


INPUT_MODELS: dict[JobKind, type[BaseModel]] = {JobKind.CHAT: ChatInput}


def validate_input(kind: JobKind, data: dict[str, Any]) -> None:
    """Raise pydantic's ``ValidationError`` if ``data`` is not a valid input for ``kind``."""
    INPUT_MODELS[kind].model_validate(data)


__all__ = ["INPUT_MODELS", "ChatInput", "ValidationError", "validate_input"]
