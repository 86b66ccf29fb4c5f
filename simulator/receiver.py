"""A sample webhook receiver, written the way a customer would write one.

The demo, the tests and the benches point genq's webhooks here. Each hook (any
name; an unknown one is created on its first request) checks Standard Webhooks
signatures with the stock `standardwebhooks` library, counts redeliveries by
`webhook-id`, keeps its recent requests and answers as scripted, so a test can
play a receiver that is down, slow, gone or moved.

POST   /hooks/{name}                   receive a webhook
GET    /_sim/hooks                     every hook's counters
GET    /_sim/hooks/{name}              one hook's counters, unique ids and recent requests
PUT    /_sim/hooks/{name}              set a hook's secrets, scripted answers and capture dir
DELETE /_sim/hooks/{name}              forget a hook
POST   /_sim/hooks/{name}/release      let the hook's held requests answer
"""

import asyncio
import json
import re
from collections import Counter, deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from standardwebhooks import Webhook
from standardwebhooks.webhooks import EmptyWebhookSecretError, WebhookVerificationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

KEEP_REQUESTS = 1000
HOLD_TIMEOUT_S = 30.0
NO_BODY_STATUSES = (204, 304)
COUNTERS = ("received", "verified", "bad_signature", "unverified", "duplicates")
UNSAFE_IN_FILE_NAME = re.compile(r"[^\w.-]")


class Answer(BaseModel):
    """How a hook answers one request."""

    model_config = ConfigDict(extra="forbid")

    status: int = Field(default=200, ge=200, le=599)
    retry_after: int | None = Field(default=None, ge=0)
    """Seconds sent in a Retry-After header."""
    location: str | None = None
    """Sent in a Location header, for redirects."""
    delay_ms: float = Field(default=0, ge=0)
    """How long to wait before answering."""
    hold: bool = False
    """Wait for POST /_sim/hooks/{name}/release (or HOLD_TIMEOUT_S) before answering."""


class HookConfig(BaseModel):
    """A hook's behaviour, as PUT /_sim/hooks/{name} sets it."""

    model_config = ConfigDict(extra="forbid")

    secrets: list[str] = Field(default_factory=list)
    """Signing secrets ("whsec_..."); a request is verified if it passes any. None: unverified."""
    responses: list[Answer] = Field(default_factory=list)
    """Answers to the next requests, one each, in order."""
    default: Answer = Field(default_factory=Answer)
    """The answer once responses are used up."""
    capture_dir: Path | None = None
    """Where to write each request as a raw HTTP/1.1 file, for `genq webhooks verify`."""

    @field_validator("secrets")
    @classmethod
    def _usable_secrets(cls, secrets: list[str]) -> list[str]:
        for secret in secrets:
            try:
                Webhook(secret)
            except (ValueError, EmptyWebhookSecretError) as error:
                raise ValueError(f"not a usable webhook secret: {error}") from None
        return secrets


@dataclass
class Hook:
    """One receiving endpoint: its behaviour, counters and recent requests."""

    name: str
    config: HookConfig = field(default_factory=HookConfig)
    script: deque[Answer] = field(default_factory=deque)
    counts: Counter[str] = field(default_factory=Counter)
    ids: dict[str, None] = field(default_factory=dict)
    """Unique webhook ids in arrival order (a dict is an ordered set)."""
    requests: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=KEEP_REQUESTS))
    held: int = 0
    released: asyncio.Event = field(default_factory=asyncio.Event)

    def configure(self, config: HookConfig) -> None:
        """Replace the behaviour, restarting the script; counters and requests stay."""
        self.config = config
        self.script = deque(config.responses)

    def next_answer(self) -> Answer:
        """The next scripted answer, or the default once the script is used up."""
        return self.script.popleft() if self.script else self.config.default

    def record(
        self,
        body: bytes,
        headers: Mapping[str, str],
        verified: bool,
        error: str | None,
        status: int,
    ) -> None:
        """Count and keep one request, whatever it was answered."""
        webhook_id = headers.get("webhook-id")
        self.counts["received"] += 1
        if not self.config.secrets:
            self.counts["unverified"] += 1
        else:
            self.counts["verified" if verified else "bad_signature"] += 1
        if webhook_id is not None:
            if webhook_id in self.ids:
                self.counts["duplicates"] += 1
            self.ids[webhook_id] = None
        self.requests.append(
            {
                "webhook_id": webhook_id,
                "timestamp": headers.get("webhook-timestamp"),
                "signature": headers.get("webhook-signature"),
                "type": _event_type(body),
                "verified": verified,
                "error": error,
                "status": status,
                "body": body.decode(errors="replace"),
            }
        )

    async def hold(self) -> None:
        """Wait until released, or HOLD_TIMEOUT_S so a forgotten hold never hangs the server."""
        self.held += 1
        try:
            await asyncio.wait_for(self.released.wait(), HOLD_TIMEOUT_S)
        except TimeoutError:
            pass
        finally:
            self.held -= 1

    def release(self) -> int:
        """Let every held request answer; later holds wait for the next release."""
        held = self.held
        self.released.set()
        self.released = asyncio.Event()
        return held

    def summary(self) -> dict[str, Any]:
        """The counters, and how many requests are held now."""
        return {
            "name": self.name,
            **{name: self.counts[name] for name in COUNTERS},
            "held": self.held,
        }

    def describe(self) -> dict[str, Any]:
        """The counters, unique ids and the recent requests, oldest first."""
        return {**self.summary(), "ids": list(self.ids), "requests": list(self.requests)}


class Hooks:
    """Every hook by name."""

    def __init__(self) -> None:
        self._hooks: dict[str, Hook] = {}

    def __iter__(self) -> Iterator[Hook]:
        return iter(list(self._hooks.values()))

    def get(self, name: str) -> Hook:
        """The hook called name, created without secrets if new."""
        if name not in self._hooks:
            self._hooks[name] = Hook(name)
        return self._hooks[name]

    def find(self, name: str) -> Hook | None:
        """The hook called name, if it exists."""
        return self._hooks.get(name)

    def forget(self, name: str) -> bool:
        """Drop the hook called name, releasing its held requests; whether it existed."""
        hook = self._hooks.pop(name, None)
        if hook is not None:
            hook.release()
        return hook is not None

    def clear(self) -> None:
        """Drop every hook, releasing held requests."""
        for name in list(self._hooks):
            self.forget(name)


def verify(secrets: list[str], body: bytes, headers: Mapping[str, str]) -> tuple[bool, str | None]:
    """Whether any secret verifies the request, and why not if none does."""
    error = None
    for secret in secrets:
        try:
            Webhook(secret).verify(body, dict(headers), json_parse=False)
        except WebhookVerificationError as failure:
            error = str(failure)
        except ValueError as failure:  # a malformed signature header or a non-UTF-8 body
            error = f"malformed webhook: {failure}"
        else:
            return True, None
    return False, error


def capture(directory: Path, number: int, request: Request, body: bytes) -> None:
    """Write the request as a raw HTTP/1.1 request file, `<number>-<webhook-id>.http`."""
    webhook_id = UNSAFE_IN_FILE_NAME.sub("_", request.headers.get("webhook-id", "no-id"))
    headers = [
        name + b": " + value
        for name, value in request.headers.raw
        if name.lower() not in (b"content-length", b"transfer-encoding")
    ]
    headers.append(b"content-length: %d" % len(body))
    head = f"POST {request.url.path} HTTP/1.1\r\n".encode() + b"\r\n".join(headers)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{number}-{webhook_id}.http").write_bytes(head + b"\r\n\r\n" + body)


async def receive(request: Request) -> Response:
    """Verify, dedup and record one webhook, then answer as the hook is scripted to."""
    body = await request.body()
    hook: Hook = request.app.state.hooks.get(request.path_params["name"])
    verified, error = verify(hook.config.secrets, body, request.headers)
    answer = hook.next_answer()
    hook.record(body, request.headers, verified, error, answer.status)
    if hook.config.capture_dir is not None:
        capture(hook.config.capture_dir, hook.counts["received"], request, body)
    if answer.delay_ms:
        await asyncio.sleep(answer.delay_ms / 1000)
    if answer.hold:
        await hook.hold()
    return _response(answer)


async def list_hooks(request: Request) -> JSONResponse:
    """Every hook's counters, oldest hook first."""
    return JSONResponse({"data": [hook.summary() for hook in request.app.state.hooks]})


async def get_hook(request: Request) -> JSONResponse:
    """One hook in detail; one that never received anything reads as empty."""
    name = request.path_params["name"]
    hook = request.app.state.hooks.find(name) or Hook(name)
    return JSONResponse(hook.describe())


async def configure_hook(request: Request) -> JSONResponse:
    """Set a hook's behaviour from a JSON HookConfig, creating the hook if new."""
    try:
        config = HookConfig.model_validate_json(await request.body())
    except ValidationError as error:
        return JSONResponse({"error": str(error)}, status_code=400)
    hook: Hook = request.app.state.hooks.get(request.path_params["name"])
    hook.configure(config)
    return JSONResponse(hook.describe())


async def delete_hook(request: Request) -> JSONResponse:
    """Forget a hook, its counters and requests; releases its held requests."""
    return JSONResponse({"deleted": request.app.state.hooks.forget(request.path_params["name"])})


async def release_hook(request: Request) -> JSONResponse:
    """Let the hook's held requests answer; says how many were held."""
    hook: Hook | None = request.app.state.hooks.find(request.path_params["name"])
    return JSONResponse({"released": hook.release() if hook is not None else 0})


routes = [
    Route("/hooks/{name}", receive, methods=["POST"]),
    Route("/_sim/hooks", list_hooks, methods=["GET"]),
    Route("/_sim/hooks/{name}", get_hook, methods=["GET"]),
    Route("/_sim/hooks/{name}", configure_hook, methods=["PUT"]),
    Route("/_sim/hooks/{name}", delete_hook, methods=["DELETE"]),
    Route("/_sim/hooks/{name}/release", release_hook, methods=["POST"]),
]


def _event_type(body: bytes) -> str | None:
    try:
        event = json.loads(body)
    except ValueError:
        return None
    event_type = event.get("type") if isinstance(event, dict) else None
    return event_type if isinstance(event_type, str) else None


def _response(answer: Answer) -> Response:
    headers = {}
    if answer.retry_after is not None:
        headers["retry-after"] = str(answer.retry_after)
    if answer.location is not None:
        headers["location"] = answer.location
    if answer.status in NO_BODY_STATUSES:
        return Response(status_code=answer.status, headers=headers)
    return JSONResponse({"ok": answer.status < 300}, answer.status, headers)
