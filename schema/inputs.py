"""Provider-shaped job inputs, one model per wire protocol, checked before a job is stored.

Inputs are validated for what genq relies on and otherwise passed through as given,
so a provider's newer parameters need no change here.
"""

from typing import Any, Literal, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from schema.clean import MAX_TOKENS
from schema.routes import Protocol


def _no_streaming(value: bool | None) -> bool | None:
    if value:
        raise ValueError("streaming is not available for queued jobs; omit 'stream'")
    return value


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[dict[str, Any]] | None


class ChatInput(BaseModel):
    """OpenAI chat-completions style input."""

    model_config = ConfigDict(extra="allow")

    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: int | None = Field(None, ge=1, le=MAX_TOKENS)
    max_completion_tokens: int | None = Field(None, ge=1, le=MAX_TOKENS)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, ge=0, le=1)
    n: int | None = Field(None, ge=1, le=8)
    stream: bool | None = None

    no_streaming = field_validator("stream")(_no_streaming)


class AnthropicMessage(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: Literal["user", "assistant"]
    content: str | list[dict[str, Any]]


class AnthropicInput(BaseModel):
    """Anthropic messages input: ``max_tokens`` is required, ``system`` is separate."""

    model_config = ConfigDict(extra="allow")

    messages: list[AnthropicMessage] = Field(min_length=1)
    max_tokens: int = Field(ge=1, le=MAX_TOKENS)
    system: str | list[dict[str, Any]] | None = None
    temperature: float | None = Field(None, ge=0, le=1)
    stream: bool | None = None
    # Not Anthropic's, but the budget reservation reads them when given: keep them bounded.
    max_completion_tokens: int | None = Field(None, ge=1, le=MAX_TOKENS)
    n: int | None = Field(None, ge=1, le=8)

    no_streaming = field_validator("stream")(_no_streaming)


class ImageInput(BaseModel):
    """OpenAI images generations input."""

    model_config = ConfigDict(extra="allow")

    prompt: str = Field(min_length=1, max_length=32000)
    n: int | None = Field(None, ge=1, le=10)
    size: str | None = None


class PredictionInput(BaseModel):
    """A Replicate model's own input; genq reads only the output count."""

    model_config = ConfigDict(extra="allow")

    prompt: str | None = Field(None, min_length=1)
    num_outputs: int | None = Field(None, ge=1, le=10)


class VideoInput(BaseModel):
    """OpenAI videos input."""

    model_config = ConfigDict(extra="allow")

    prompt: str = Field(min_length=1, max_length=32000)
    seconds: Literal["4", "8", "12"] = "4"
    size: str | None = None

    @field_validator("seconds", mode="before")
    @classmethod
    def _seconds_as_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) else value


class VeoInstance(BaseModel):
    """One Veo instance: a prompt, an image to animate, or both."""

    model_config = ConfigDict(extra="allow")

    prompt: str | None = Field(None, min_length=1, max_length=32000)
    image: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _prompt_or_image(self) -> Self:
        if self.prompt is None and self.image is None:
            raise ValueError("give a 'prompt', an 'image', or both")
        return self


class VeoParameters(BaseModel):
    """The parameters genq reads, in Google's camelCase; the others pass through."""

    model_config = ConfigDict(extra="allow")

    durationSeconds: int | None = Field(None, ge=4, le=8)
    sampleCount: int | None = Field(None, ge=1, le=4)
    storageUri: str | None = Field(None, pattern=r"^gs://")


class VeoInput(BaseModel):
    """Google Veo's ``predictLongRunning`` body: one instance and its parameters."""

    model_config = ConfigDict(extra="forbid")

    instances: list[VeoInstance] = Field(min_length=1, max_length=1)
    parameters: VeoParameters | None = None


class FalVideoInput(BaseModel):
    """A fal video app's own input; genq needs its prompt, and reads its duration."""

    model_config = ConfigDict(extra="allow")

    prompt: str = Field(min_length=1, max_length=32000)
    duration: str | None = Field(None, pattern=r"^\d{1,2}s?$")

    @field_validator("duration", mode="before")
    @classmethod
    def _duration_as_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) else value


RUNWAY_DEFAULT_DURATION_S = 5
RUNWAY_DEFAULT_RATIO = "1280:720"


class RunwayTaskInput(BaseModel):
    """A Runway task's body without its model, in Runway's own (camelCase) names: a
    ``promptImage`` makes it image_to_video. genq prices the ``duration``, which it sends
    as given or as ``RUNWAY_DEFAULT_DURATION_S``."""

    model_config = ConfigDict(extra="allow")

    prompt_text: str | None = Field(None, alias="promptText", min_length=1, max_length=1000)
    prompt_image: str | list[dict[str, Any]] | None = Field(None, alias="promptImage")
    ratio: str | None = Field(None, min_length=1)
    duration: int = Field(RUNWAY_DEFAULT_DURATION_S, ge=2, le=10)
    seed: int | None = Field(None, ge=0, le=4_294_967_295)

    @model_validator(mode="after")
    def _text_or_image(self) -> "RunwayTaskInput":
        if self.prompt_text is None and self.prompt_image is None:
            raise ValueError("give promptText, promptImage or both")
        return self


INPUT_MODELS: dict[Protocol, type[BaseModel]] = {
    Protocol.OPENAI_CHAT: ChatInput,
    Protocol.ANTHROPIC_MESSAGES: AnthropicInput,
    Protocol.OPENAI_IMAGES: ImageInput,
    Protocol.REPLICATE_PREDICTIONS: PredictionInput,
    Protocol.OPENAI_VIDEOS: VideoInput,
    Protocol.GOOGLE_VEO: VeoInput,
    Protocol.FAL_QUEUE: FalVideoInput,
    Protocol.RUNWAY_TASKS: RunwayTaskInput,
}


def validate_input(protocol: Protocol, data: dict[str, Any]) -> None:
    """Raise pydantic's ``ValidationError`` if ``data`` is not valid for ``protocol``."""
    INPUT_MODELS[protocol].model_validate(data)


__all__ = ["INPUT_MODELS", "ChatInput", "ValidationError", "validate_input"]
