"""Writing an attempt's outcome through the job state machine, then what follows commit:
the staged messages, the ended-job metric and the cache write."""

from infra import metrics
from store import lifecycle
from store.moves import Claim, Outcome
from workers.context import bind_job
from workers.execution.attempt import CacheWrite
from workers.runtime import Runtime


def commit(
    runtime: Runtime, claim: Claim, outcome: Outcome, cache: CacheWrite | None = None
) -> None:
    """Record the outcome in one transaction if the job is still ours; a result is cached
    only when it became the job's."""
    if outcome.attempt is not None:
        values = outcome.attempt.values
        route, _, model = claim.current_model.partition("/")
        metrics.attempt_made(route, model, values)
        if values.get("provider_request_id"):
            bind_job(provider_request_id=values["provider_request_id"])
    with runtime.sessions.begin() as session:
        moved = lifecycle.finish(session, runtime.settings, claim, outcome)
    lifecycle.publish(runtime.sessions, runtime.broker, moved)
    if moved.changed and cache is not None:
        runtime.cache.put(cache.key, cache.value, cache.ttl_s)
