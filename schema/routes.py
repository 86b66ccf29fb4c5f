"""Provider routes: which provider account serves which models, at what price, and how to
reach it.

Routes are configuration (TOML). A job's ``model`` is ``"<route>/<model>"``; resolving
it here is what the API validates and what the worker calls. Each model may name an
ordered list of fallbacks (other ``"<route>/<model>"`` of the same kind) to try when its
own route gives up on a job.
"""

import os
import tomllib
from collections.abc import Iterator
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    HttpUrl,
    SecretStr,
    field_validator,
    model_validator,
)

from schema.errors import RequestError

DEFAULT_ROUTES_FILE = Path(__file__).with_name("routes.toml")


class Protocol(StrEnum):
    OPENAI_CHAT = "openai-chat"
    OPENAI_IMAGES = "openai-images"
    ANTHROPIC_MESSAGES = "anthropic-messages"
    REPLICATE_PREDICTIONS = "replicate-predictions"
    OPENAI_VIDEOS = "openai-videos"
    GOOGLE_VEO = "google-veo"
    FAL_QUEUE = "fal-queue"
    RUNWAY_TASKS = "runway-tasks"


class JobKind(StrEnum):
    CHAT = "chat"
    IMAGE = "image"
    VIDEO = "video"


KIND_OF_PROTOCOL = {
    Protocol.OPENAI_CHAT: JobKind.CHAT,
    Protocol.ANTHROPIC_MESSAGES: JobKind.CHAT,
    Protocol.OPENAI_IMAGES: JobKind.IMAGE,
    Protocol.REPLICATE_PREDICTIONS: JobKind.IMAGE,
    Protocol.OPENAI_VIDEOS: JobKind.VIDEO,
    Protocol.GOOGLE_VEO: JobKind.VIDEO,
    Protocol.FAL_QUEUE: JobKind.VIDEO,
    Protocol.RUNWAY_TASKS: JobKind.VIDEO,
}
ASYNC_PROTOCOLS = frozenset(
    {
        Protocol.REPLICATE_PREDICTIONS,
        Protocol.OPENAI_VIDEOS,
        Protocol.GOOGLE_VEO,
        Protocol.FAL_QUEUE,
        Protocol.RUNWAY_TASKS,
    }
)


CALLBACK_PROTOCOLS = frozenset({Protocol.REPLICATE_PREDICTIONS, Protocol.FAL_QUEUE})
"""Protocols whose provider can call back when a job ends."""
FAL_JWKS_URL = "https://rest.alpha.fal.ai/.well-known/jwks.json"
"""The key set fal publishes for its webhook signatures."""
CALLBACK_PATH = "/v1/provider-callbacks/{route}/{job_id}"


class ModelSpec(BaseModel):
    """What one model costs and how it behaves. Prices are in US dollars."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    input_per_mtok: float = Field(0.0, ge=0, description="Per million input tokens.")
    output_per_mtok: float = Field(0.0, ge=0, description="Per million output tokens.")
    per_image: float = Field(0.0, ge=0)
    per_video_second: float = Field(0.0, ge=0)
    per_second: float = Field(0.0, ge=0, description="Per second of provider run time.")
    per_request: float = Field(0.0, ge=0)
    max_output_tokens: int = Field(4096, ge=1, description="Assumed when a job sets none.")
    rpm: int | None = Field(None, gt=0, description="Requests per minute for this model.")
    tpm: int | None = Field(None, gt=0, description="Tokens per minute for this model.")
    expected_duration_s: float | None = Field(None, gt=0, description="For async models.")
    max_duration_s: float | None = Field(None, gt=0, description="Bills at most this long.")
    fallbacks: tuple[str, ...] = ()


class Route(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    protocol: Protocol
    base_url: HttpUrl
    api_key_env: str | None = None
    models: dict[str, ModelSpec] = Field(min_length=1)
    timeout_s: float = Field(60.0, gt=0)
    connect_timeout_s: float = Field(5.0, gt=0)
    max_attempts: int = Field(3, ge=1)
    rpm: int | None = Field(None, gt=0, description="Requests per minute of the account.")
    tpm: int | None = Field(None, gt=0, description="Tokens per minute of the account.")
    max_in_flight: int | None = Field(None, gt=0, description="Concurrent calls at most.")
    breaker_failures: int = Field(5, ge=1, description="Consecutive failures that open it.")
    breaker_failure_rate: float = Field(0.5, gt=0, le=1, description="Or this rate of...")
    breaker_window: int = Field(20, ge=2, description="...the last this many calls.")
    breaker_cooldown_s: float = Field(30.0, gt=0, description="Open this long, then probe.")
    cache_ttl_s: int = Field(0, ge=0, description="Result cache lifetime; 0 turns it off.")
    cache_shared: bool = Field(False, description="Share cached results across tenants.")
    anthropic_version: str = "2023-06-01"
    callback_base_url: HttpUrl | None = Field(
        None, description="Where genq's API receives provider callbacks; unset turns them off."
    )
    webhook_secret_env: str | None = Field(
        None, description="Replicate: the variable holding the webhook signing secret."
    )
    jwks_url: HttpUrl | None = Field(
        None, description="fal: the key set that signs callbacks; fal's own when unset."
    )

    @model_validator(mode="after")
    def _callbacks_are_verifiable(self) -> "Route":
        if self.callback_base_url is None:
            return self
        if self.protocol not in CALLBACK_PROTOCOLS:
            raise ValueError(f"callback_base_url: {self.protocol} sends no callbacks")
        if self.protocol == Protocol.REPLICATE_PREDICTIONS and not self.webhook_secret_env:
            raise ValueError("callback_base_url needs webhook_secret_env to verify callbacks")
        return self

    @field_validator("models", mode="before")
    @classmethod
    def _list_means_no_prices(cls, value: Any) -> Any:
        if isinstance(value, list | tuple):
            return {name: {} for name in value}
        return value

    @property
    def kind(self) -> JobKind:
        return KIND_OF_PROTOCOL[self.protocol]

    @property
    def is_async(self) -> bool:
        return self.protocol in ASYNC_PROTOCOLS

    @property
    def callbacks(self) -> bool:
        """Whether the provider calls genq back when a job ends."""
        return self.callback_base_url is not None

    def callback_url(self, job_id: str) -> str | None:
        """The URL the provider calls back for job_id, or None with callbacks off."""
        if self.callback_base_url is None:
            return None
        path = CALLBACK_PATH.format(route=self.name, job_id=job_id)
        return str(self.callback_base_url).rstrip("/") + path

    def api_key(self) -> SecretStr | None:
        """The provider key, read from the environment at call time."""
        return _env_secret(self.api_key_env)

    @property
    def keyed(self) -> bool:
        """Whether the route has its key: true for a route that names none."""
        return self.api_key_env is None or self.api_key() is not None

    def webhook_secret(self) -> SecretStr | None:
        """The provider's webhook signing secret, read from the environment at call time."""
        return _env_secret(self.webhook_secret_env)


def _env_secret(name: str | None) -> SecretStr | None:
    if name is None:
        return None
    value = os.environ.get(name, "").strip()
    return SecretStr(value) if value else None


class UnknownModelError(RequestError, ValueError):
    """The model reference names no configured route or model."""


class Routes:
    """All configured routes, looked up by job model reference."""

    def __init__(self, routes: dict[str, Route]) -> None:
        self.by_name = routes
        self._check_fallbacks()

    def resolve(self, model_ref: str) -> tuple[Route, str]:
        """Split ``"<route>/<model>"`` and check both exist."""
        route_name, sep, model = model_ref.partition("/")
        if not sep or not route_name or not model:
            raise UnknownModelError(
                f"model must look like '<route>/<model>', e.g. 'openai/gpt-4o-mini'; "
                f"got {model_ref!r}"
            )
        route = self.by_name.get(route_name)
        if route is None:
            known = ", ".join(sorted(self.by_name)) or "none"
            raise UnknownModelError(f"unknown route {route_name!r} (configured: {known})")
        if model not in route.models:
            raise UnknownModelError(
                f"route {route_name!r} does not serve model {model!r} "
                f"(it serves: {', '.join(route.models)})"
            )
        return route, model

    def spec(self, model_ref: str) -> ModelSpec:
        route, model = self.resolve(model_ref)
        return route.models[model]

    def unkeyed_fallbacks(self) -> list[tuple[str, str, str]]:
        """Each fallback whose route names a key the environment lacks, as (model, fallback,
        variable): the worker skips them, and says so once at start."""
        return [
            (f"{route.name}/{model}", fallback, str(target.api_key_env))
            for route, model, fallback, target in self._fallbacks()
            if not target.keyed
        ]

    def _check_fallbacks(self) -> None:
        for route, model, fallback, target in self._fallbacks():
            if target.kind != route.kind:
                raise ValueError(
                    f"{route.name}/{model}: fallback {fallback!r} is a {target.kind} "
                    f"model, not {route.kind}"
                )

    def _fallbacks(self) -> Iterator[tuple[Route, str, str, Route]]:
        """Each fallback as (route, model, fallback reference, the fallback's route)."""
        for route in self.by_name.values():
            for model, spec in route.models.items():
                for fallback in spec.fallbacks:
                    yield route, model, fallback, self.resolve(fallback)[0]


def load_routes(path: Path | None = None) -> Routes:
    """Read a routes TOML file; the shipped default when ``path`` is None."""
    data = tomllib.loads((path or DEFAULT_ROUTES_FILE).read_text())
    tables = data.get("routes", {})
    return Routes({name: Route(name=name, **table) for name, table in tables.items()})
