"""Handing a claimed job's provider call to the worker's event loop, and what a job holds
until its attempt ends.

The thread that claimed the job returns at once, so its message is acknowledged; the call
is made on the loop, and its finish (the shared limits, the commit) runs on a finisher
thread, in the job's log and error-report scope, and gives back what the job held.
"""

from dataclasses import dataclass
from typing import Any

import httpx

from store.moves import Claim
from workers.admission import Admitted
from workers.call_loop import CallLoop
from workers.context import job_scope
from workers.execution.attempt import answered
from workers.execution.calls import Call
from workers.execution.claims import bind
from workers.execution.ending import conclude
from workers.execution.feedback import give_back
from workers.execution.outcomes import Started
from workers.providers import CallAdapter, ProviderResult
from workers.runtime import Runtime


@dataclass
class Capacity:
    """What a job holds from admission to the end of its attempt: a place on the call loop
    (when its call is to go there) and what admission gave it (an in-flight slot, maybe the
    circuit's probe; settled by the call's report, or given back unused)."""

    loop: CallLoop | None = None
    admitted: Admitted | None = None

    def release(self, runtime: Runtime) -> None:
        """Give back what admission gave, unless the call's report already settled it."""
        if self.admitted is not None:
            give_back(runtime, self.admitted)

    def let_go(self, runtime: Runtime) -> None:
        """``release``, and give back the place on the loop: the job's call never went
        there, or its thread made it."""
        self.release(runtime)
        if self.loop is not None:
            self.loop.give_back()


def hand_over(
    runtime: Runtime, claim: Claim, call: Call, started: Started, hold: Capacity, key: str | None
) -> None:
    """Make the call on ``hold.loop``; its answer (or failure) is concluded after."""
    assert hold.loop is not None
    adapter: CallAdapter = runtime.adapter(call.route)  # type: ignore[assignment]

    async def make(client: httpx.AsyncClient) -> ProviderResult:
        return await adapter.run_async(client, call.model, call.input)

    def finish(answer: ProviderResult | Exception) -> None:
        with job_scope(job_id=claim.job_id):
            bind(claim)
            try:
                conclude(
                    runtime,
                    claim,
                    call,
                    hold.admitted,
                    started,
                    lambda: _answered(runtime, claim, call, started, hold, key, answer),
                )
            finally:
                hold.release(runtime)

    hold.loop.hand_over(call.route, make, finish)


def _answered(
    runtime: Runtime,
    claim: Claim,
    call: Call,
    started: Started,
    hold: Capacity,
    key: str | None,
    answer: Any,
) -> Any:
    if isinstance(answer, Exception):
        raise answer
    return answered(runtime, claim, call, started, hold.admitted, answer, key)
