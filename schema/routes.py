"""Provider routes: which provider account serves which models, and how to reach it.

Routes are configuration (TOML). A job's ``model`` is ``"<route>/<model>"``; resolving
it here is what the API validates and what the worker calls.
"""

import os
import tomllib
from enum import StrEnum
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, SecretStr

DEFAULT_ROUTES_FILE = Path(__file__).with_name("routes.toml")


class Protocol(StrEnum):
    OPENAI_CHAT = "openai-chat"


class JobKind(StrEnum):
    CHAT = "chat"
    IMAGE = "image"
    VIDEO = "video"


KIND_OF_PROTOCOL = {Protocol.OPENAI_CHAT: JobKind.CHAT}


class Route(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    protocol: Protocol
    base_url: HttpUrl
    api_key_env: str | None = None
    models: tuple[str, ...] = Field(min_length=1)
    timeout_s: float = Field(60.0, gt=0)
    connect_timeout_s: float = Field(5.0, gt=0)
    max_attempts: int = Field(3, ge=1)

    @property
    def kind(self) -> JobKind:
        return KIND_OF_PROTOCOL[self.protocol]

    def api_key(self) -> SecretStr | None:
        """The provider key, read from the environment at call time."""
        if self.api_key_env is None:
            return None
        value = os.environ.get(self.api_key_env)
        return SecretStr(value) if value else None


class UnknownModelError(ValueError):
    """The model reference names no configured route or model."""


class Routes:
    """All configured routes, looked up by job model reference."""

    def __init__(self, routes: dict[str, Route]) -> None:
        self.by_name = routes

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


def load_routes(path: Path | None = None) -> Routes:
    """Read a routes TOML file; the shipped default when ``path`` is None."""
    data = tomllib.loads((path or DEFAULT_ROUTES_FILE).read_text())
    tables = data.get("routes", {})
    return Routes({name: Route(name=name, **table) for name, table in tables.items()})
