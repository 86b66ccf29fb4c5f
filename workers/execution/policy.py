"""What happens to a job after a failed attempt: retry on the same route, move to the next
route of its fallback chain, or end it. A pure function of the error, the attempt counts,
the route's budget, the chain and the deadline; the backoff it draws is passed in.

- A retryable failure is retried on its route while the route's attempts last, after a
  backoff (full jitter, honouring Retry-After); a retry that would land past the job's
  deadline ends the job as ``deadline_exceeded`` instead.
- When the route is spent, or it cannot serve the model at all (401/403/404), the next model
  of the chain takes over. Other permanent failures (a bad request, a content policy
  refusal) would fail anywhere, so they end the job.
- An ended job is ``failed`` when the failure is the request's own, and otherwise
  ``dead_lettered`` for a person to review and requeue.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from schema.errors import AttemptError, ErrorClass, JobStop
from schema.jobs import JobStatus
from workers.backoff import retry_delay_s
from workers.execution.calls import next_in_chain

# Failures that say the route cannot serve the model, so another route may.
ROUTE_FAULTS = frozenset({ErrorClass.AUTH, ErrorClass.NOT_FOUND, ErrorClass.CONFIGURATION})
# Failures that are the request's own: the job ends ``failed``, not dead-lettered.
EXPECTED_FAILURES = frozenset(
    {
        ErrorClass.BAD_REQUEST,
        ErrorClass.CONTENT_POLICY,
        ErrorClass.TOO_LARGE,
        ErrorClass.PROVIDER_JOB_FAILED,
        ErrorClass.DEADLINE,
        ErrorClass.JOB_TIMEOUT,
    }
)

Backoff = Callable[[int, float | None], float]


@dataclass(frozen=True)
class Situation:
    """Where the job stands when an attempt fails. ``may_continue`` is False when nothing can
    follow whatever the error: a failed poll, a broken adapter, a route that cannot be
    prepared."""

    route_attempt: int
    max_attempts: int
    chain: tuple[str, ...]
    current_model: str
    deadline: datetime | None
    now: datetime
    may_continue: bool = True


@dataclass(frozen=True)
class Retry:
    delay_s: float


@dataclass(frozen=True)
class FallBack:
    model: str


@dataclass(frozen=True)
class End:
    status: JobStatus
    error: AttemptError


Decision = Retry | FallBack | End


def decide(error: AttemptError, situation: Situation, backoff: Backoff | None = None) -> Decision:
    """Retry, fall back or end, as the module docstring lays out."""
    if situation.may_continue:
        if error.retryable and situation.route_attempt < situation.max_attempts:
            delay_s = (backoff or retry_delay_s)(situation.route_attempt, error.retry_after_s)
            deadline = situation.deadline
            if deadline is not None and situation.now + timedelta(seconds=delay_s) >= deadline:
                message = f"the job's deadline comes before its next retry (last: {error.message})"
                return end(JobStop(ErrorClass.DEADLINE, message))
            return Retry(delay_s)
        fallback = next_in_chain(situation.chain, situation.current_model)
        if fallback is not None and (error.retryable or error.error_class in ROUTE_FAULTS):
            return FallBack(fallback)
    return end(error)


def end(error: AttemptError) -> End:
    """``failed`` for the request's own fault, else dead-lettered."""
    expected = error.error_class in EXPECTED_FAILURES
    return End(JobStatus.FAILED if expected else JobStatus.DEAD_LETTERED, error)
