"""Injected failures: what a flaky provider or network does to an answer.

A rule picks requests by endpoint and either replaces the answer ("status",
"reset") or distorts the real one ("timeout", "malformed_json", "slow_body", "nul_text":
a NUL character in the answer's text, as models now and then emit).
"""

import asyncio
import json
import random
from collections.abc import Sequence
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

FaultKind = Literal["status", "timeout", "reset", "malformed_json", "slow_body", "nul_text"]
SLOW_BODY_CHUNKS = 8


class FaultRule(BaseModel):
    """Which requests fail and how.

    With `count` the rule fires on the next `count` matching requests; with
    `probability` on each one with that chance, drawn from the seeded RNG;
    with neither on every one.
    """

    model_config = ConfigDict(extra="forbid")

    endpoint: str = "*"
    """A stats name such as "chat.completions", or "*" for every endpoint."""
    kind: FaultKind
    code: int = Field(default=500, ge=400, le=599)
    """The status a "status" fault answers, in the protocol's own error shape."""
    retry_after: int | None = Field(default=None, ge=0)
    """Seconds sent in a retry-after header by a "status" fault."""
    delay_s: float = Field(default=10.0, ge=0)
    """How long a "timeout" fault holds the answer, or a "slow_body" fault takes to send it."""
    count: int | None = Field(default=None, ge=0)
    """Matching requests still to fail; decremented as the rule fires."""
    probability: float | None = Field(default=None, ge=0, le=1)

    @model_validator(mode="after")
    def _count_or_probability(self) -> Self:
        if self.count is not None and self.probability is not None:
            raise ValueError("give either count or probability, not both")
        return self

    def matches(self, endpoint: str) -> bool:
        """Whether the rule applies to requests to endpoint."""
        return self.endpoint in ("*", endpoint)


def pick_fault(rules: Sequence[FaultRule], endpoint: str, rng: random.Random) -> FaultRule | None:
    """The first rule that fires for a request to endpoint, consuming one of its count."""
    for rule in rules:
        if not rule.matches(endpoint):
            continue
        if rule.count is not None:
            if rule.count == 0:
                continue
            rule.count -= 1
            return rule
        if rule.probability is None or rng.random() < rule.probability:
            return rule
    return None


async def distort(response: Response, rule: FaultRule) -> Response:
    """The real answer as a distorting fault delivers it."""
    if rule.kind == "timeout":
        await asyncio.sleep(rule.delay_s)
    elif rule.kind == "malformed_json":
        headers = {
            name: value
            for name, value in response.headers.items()
            if name not in ("content-length", "content-type")
        }
        body = bytes(response.body)
        return Response(body[: len(body) // 2], headers=headers, media_type="application/json")
    elif rule.kind == "slow_body":
        return SlowBody(response, rule.delay_s)
    elif rule.kind == "nul_text":
        answer = json.loads(bytes(response.body))
        _add_nul(answer)
        headers = {
            name: value for name, value in response.headers.items() if name != "content-length"
        }
        return Response(json.dumps(answer), response.status_code, headers=headers)
    return response


TEXT_KEYS = ("content", "text")


def _add_nul(value: Any) -> bool:
    """Append NUL to the first text string in ``value``; whether one was found."""
    if isinstance(value, list):
        return any(_add_nul(item) for item in value)
    if not isinstance(value, dict):
        return False
    for key, item in value.items():
        if key in TEXT_KEYS and isinstance(item, str):
            value[key] = item + "\x00"
            return True
        if _add_nul(item):
            return True
    return False


class Disconnect(Response):
    """No answer at all: the connection closes before a status line is sent.

    ASGI has no message for this and uvicorn answers 500 to an app that raises
    before responding, so this closes uvicorn's transport, which its receive
    callable holds.
    """

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        receive.__self__.transport.abort()  # type: ignore[attr-defined]
        await asyncio.sleep(0)


class SlowBody(Response):
    """The answer of response, its body trickling out in small chunks over delay_s seconds."""

    def __init__(self, response: Response, delay_s: float) -> None:
        super().__init__(bytes(response.body), response.status_code)
        self.raw_headers = response.raw_headers
        self.delay_s = delay_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        )
        size = -(-len(self.body) // SLOW_BODY_CHUNKS) or 1
        chunks = [self.body[start : start + size] for start in range(0, len(self.body), size)]
        for chunk in chunks:
            await asyncio.sleep(self.delay_s / len(chunks))
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
