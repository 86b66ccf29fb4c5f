"""One attempt at a claimed job: serve it from the cache, call the provider, or submit an
async provider job, and say what came of it. A failure raises ``AttemptError``. A job
taken over from a worker that could not commit uses the answer that worker kept."""

from dataclasses import dataclass, replace
from typing import Any

from store.moves import Claim, Outcome
from workers.admission import Admitted
from workers.cache import cache_key
from workers.execution.calls import Call
from workers.execution.feedback import give_back, report_success
from workers.execution.outcomes import Started, attempt_record, submitted, succeeded
from workers.execution.waiting import next_poll_s, polled, seen_started, with_provider_job
from workers.kept import Kept
from workers.providers import AsyncState, PollResult, ProviderResult
from workers.runtime import Runtime


@dataclass(frozen=True)
class CacheWrite:
    """A result to cache once the outcome is committed."""

    key: str
    value: dict[str, Any]
    ttl_s: int


@dataclass(frozen=True)
class Attempted:
    """An attempt's outcome, the result to cache once it is committed, the provider's
    answer to keep for the next attempt if the commit fails, and the version of the
    tenant's webhook endpoints if the call's report read it."""

    outcome: Outcome
    cache: CacheWrite | None = None
    answer: Kept | None = None
    endpoints_version: bytes | None = None


def attempt(
    runtime: Runtime,
    claim: Claim,
    call: Call,
    started: Started,
    admitted: Admitted | None,
    kept: Kept | None = None,
) -> Attempted:
    """Serve the job from the answer its previous worker kept, from the cache, or from the
    provider."""
    if call.route.is_async:
        return _submit(runtime, claim, call, started, admitted, kept)
    if isinstance(kept, ProviderResult):
        return answered(runtime, claim, call, started, None, kept, None)
    key, hit = cached(runtime, claim, call, started, admitted)
    if hit is not None:
        return hit
    result = runtime.adapter(call.route).run(call.model, call.input)  # type: ignore[union-attr]
    return answered(runtime, claim, call, started, admitted, result, key)


def cached(
    runtime: Runtime, claim: Claim, call: Call, started: Started, admitted: Admitted | None
) -> tuple[str | None, Attempted | None]:
    """The job's cache key (None when its result is not cached) and, on a hit, the attempt
    the cache serves."""
    if not (claim.cache_enabled and call.route.cache_ttl_s):
        return None, None
    scope = "shared" if call.route.cache_shared else claim.tenant_id
    key = cache_key(call.route.name, call.model, call.input, scope)
    hit = runtime.cache.get(key, call.route.name)
    if hit is None:
        return key, None
    if admitted is not None:
        give_back(runtime, admitted)
    result = ProviderResult(hit["output"], hit["usage"], hit["request_id"], 200)
    return key, Attempted(succeeded(claim, call, result, started, cached=True))


def answered(
    runtime: Runtime,
    claim: Claim,
    call: Call,
    started: Started,
    admitted: Admitted | None,
    result: ProviderResult,
    key: str | None,
) -> Attempted:
    """What the provider's answer makes of the attempt: the shared limits learn from it,
    the job succeeds, and the result is cached under ``key`` once that is committed."""
    version = None if admitted is None else report_success(runtime, call, result, admitted)
    outcome = succeeded(claim, call, result, started)
    if key is None:
        return Attempted(outcome, answer=result, endpoints_version=version)
    value = {"output": result.output, "usage": result.usage, "request_id": result.request_id}
    return Attempted(outcome, CacheWrite(key, value, call.route.cache_ttl_s), result, version)


def _submit(
    runtime: Runtime,
    claim: Claim,
    call: Call,
    started: Started,
    admitted: Admitted | None,
    kept: Kept | None,
) -> Attempted:
    """Submit the provider job, or take the one the previous worker's submit kept."""
    version = None
    if isinstance(kept, PollResult):
        poll = kept
    else:
        callback_url = call.route.callback_url(claim.job_id)
        adapter = runtime.adapter(call.route)
        poll = adapter.submit(call.model, call.input, callback_url)  # type: ignore[union-attr]
        if admitted is not None:
            accepted = ProviderResult(
                {}, {}, poll.request_id, poll.http_status, poll.rate_limit_headers
            )
            version = report_success(runtime, call, accepted, admitted)
    outcome = _submitted(runtime, claim, call, poll, started)
    return Attempted(outcome, answer=poll, endpoints_version=version)


def _submitted(
    runtime: Runtime, claim: Claim, call: Call, poll: PollResult, started: Started
) -> Outcome:
    """The provider accepted the job; one that is already done ends in this attempt."""
    if poll.state == AsyncState.RUNNING:
        started_at = seen_started(poll, None, started.at)
        delay_s = next_poll_s(runtime, claim, call, poll, started.at, started_at)
        return submitted(poll, started, delay_s, started_at)
    done = polled(runtime, with_provider_job(claim, poll.provider_job_id), call, poll, started.at)
    assert done.attempt is not None
    whole = attempt_record(
        done.attempt.values["status"],
        started,
        result=poll.result,
        error=poll.error,
        cost=done.spent_micros,
        http_status=poll.http_status,
        request_id=poll.request_id,
    )
    return replace(done, attempt=whole)
