"""What every simulated endpoint does, whatever the provider.

Each call is counted, may be faulted, is authenticated and admitted against
its API key's rate limits, and its answer, success or error, carries the
provider's headers. A `Protocol` subclass says how one provider does each.
"""

import abc
import asyncio
import functools
import math
import time
from collections.abc import Awaitable, Callable, Mapping
from http import HTTPStatus

from starlette.requests import Request
from starlette.responses import Response

from simulator.config import SimConfig
from simulator.faults import Disconnect, distort, pick_fault
from simulator.ratelimit import Quota, TokenBucket

Endpoint = Callable[[Request], Awaitable[Response]]


class ProtocolError(Exception):
    """An error answer, rendered in one provider's shape by `response`."""

    status_code: int

    def response(self, request_id: str = "") -> Response:
        """The HTTP answer; request_id is for providers that echo it in the body."""
        raise NotImplementedError


class Protocol(abc.ABC):
    """One provider's wire conventions, applied to endpoints by `endpoint`."""

    family: str
    """Rate limits are kept per API key within a family."""

    @abc.abstractmethod
    def authenticate(self, request: Request, expected: str | None) -> str:
        """The request's API key, which must equal expected unless that is None."""

    @abc.abstractmethod
    def limits(self, config: SimConfig) -> dict[str, int]:
        """Per-minute limits by dimension; every family has "requests"."""

    @abc.abstractmethod
    async def rate_limited(
        self, request: Request, dimension: str, bucket: TokenBucket, amount: int, wait: float
    ) -> ProtocolError:
        """The 429 for a request asking amount of dimension, which fits in wait seconds."""

    @abc.abstractmethod
    def server_error(self, status_code: int) -> ProtocolError:
        """The error the provider answers with status_code when it fails."""

    @abc.abstractmethod
    def new_request_id(self) -> str:
        """A fresh id for one answer."""

    @abc.abstractmethod
    def headers(self, request_id: str, quota: Quota | None, elapsed: float) -> dict[str, str]:
        """Headers of every answer; quota is None before the caller is authenticated."""

    async def admit(self, request: Request, amounts: Mapping[str, int]) -> None:
        """Take each amount from the caller's bucket of that dimension, or none of them.

        Raises the provider's 429 for the first dimension that cannot cover its amount.
        """
        buckets = request.state.quota.buckets
        for dimension, amount in amounts.items():
            wait = buckets[dimension].wait(amount)
            if wait:
                raise await self.rate_limited(request, dimension, buckets[dimension], amount, wait)
        for dimension, amount in amounts.items():
            buckets[dimension].take(amount)

    def endpoint(self, name: str) -> Callable[[Endpoint], Endpoint]:
        """Wrap an endpoint counted in the stats under name.

        The endpoint raises `ProtocolError` to answer an error, and may call
        `admit` to charge more than the one request every call costs.
        """

        def decorate(endpoint: Endpoint) -> Endpoint:
            @functools.wraps(endpoint)
            async def answer(request: Request) -> Response:
                request.app.state.stats.call_started()
                try:
                    return await counted(request)
                finally:
                    request.app.state.stats.call_ended()

            async def counted(request: Request) -> Response:
                started = time.perf_counter()
                state = request.app.state
                state.stats.calls[name] += 1
                request.state.quota = None
                request_id = self.new_request_id()
                if state.config.latency_ms:
                    await asyncio.sleep(state.config.latency_ms / 1000)
                rule = pick_fault(state.config.faults, name, state.fault_rng)
                if rule is not None:
                    state.stats.faults[name] += 1
                    if rule.kind == "reset":
                        return Disconnect()
                if rule is not None and rule.kind == "status":
                    response = self.server_error(rule.code).response(request_id)
                    if rule.retry_after is not None:
                        response.headers["retry-after"] = str(rule.retry_after)
                else:
                    response = await self._answer(request, name, request_id, endpoint)
                elapsed = time.perf_counter() - started
                response.headers.update(self.headers(request_id, request.state.quota, elapsed))
                return response if rule is None else await distort(response, rule)

            return answer

        return decorate

    async def _answer(
        self, request: Request, name: str, request_id: str, endpoint: Endpoint
    ) -> Response:
        state = request.app.state
        try:
            key = self.authenticate(request, state.config.api_key)
            limits = self.limits(state.config)
            request.state.quota = state.limits.quota(self.family, key, limits, state.clock())
            await self.admit(request, {"requests": 1})
            return await endpoint(request)
        except ProtocolError as error:
            state.stats.errors[name] += 1
            if error.status_code == 429:
                state.stats.rate_limited[name] += 1
            return error.response(request_id)


def reason(status_code: int) -> str:
    """The standard reason phrase of status_code, or "Error" for non-standard ones like 529."""
    try:
        return HTTPStatus(status_code).phrase
    except ValueError:
        return "Error"


def retry_after(wait: float) -> str:
    """Seconds to wait as a retry-after header says it: a whole number, rounded up."""
    return str(math.ceil(wait))
