"""The retry / fallback / dead-letter policy, table-driven: every error class in every
situation a failed attempt can meet, with no I/O."""

from datetime import UTC, datetime, timedelta

import pytest

from schema.errors import AttemptError, ErrorClass, JobStop
from schema.jobs import JobStatus
from workers.execution.policy import End, FallBack, Retry, Situation, decide
from workers.providers import ProviderError

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
BACKOFF_S = 5.0

SITUATIONS = {
    "early, fallback left": Situation(1, 3, ("a/m", "b/m"), "a/m", None, NOW),
    "early, no fallback": Situation(1, 3, ("a/m",), "a/m", None, NOW),
    "route spent, fallback left": Situation(3, 3, ("a/m", "b/m"), "a/m", None, NOW),
    "route spent, no fallback": Situation(3, 3, ("a/m", "b/m"), "b/m", None, NOW),
    "retry would pass the deadline": Situation(
        1, 3, ("a/m",), "a/m", NOW + timedelta(seconds=1), NOW
    ),
    "nothing may follow": Situation(1, 3, ("a/m", "b/m"), "a/m", None, NOW, may_continue=False),
}

RETRY = Retry(BACKOFF_S)
FALLBACK = FallBack("b/m")
DEAD = "dead_lettered"
FAILED = "failed"
LATE = "failed: deadline_exceeded"

# One row per error class, raised as the adapters raise it (``RETRYABLE``, ``JOB_STOPS``):
# what each situation above decides, in the same order.
TABLE: dict[ErrorClass, tuple[object, ...]] = {
    # Retryable provider failures: retried, then handed on, then dead-lettered.
    ErrorClass.CONNECT: (RETRY, RETRY, FALLBACK, DEAD, LATE, DEAD),
    ErrorClass.TIMEOUT: (RETRY, RETRY, FALLBACK, DEAD, LATE, DEAD),
    ErrorClass.RATE_LIMITED: (RETRY, RETRY, FALLBACK, DEAD, LATE, DEAD),
    ErrorClass.OVERLOADED: (RETRY, RETRY, FALLBACK, DEAD, LATE, DEAD),
    ErrorClass.SERVER: (RETRY, RETRY, FALLBACK, DEAD, LATE, DEAD),
    ErrorClass.CONFLICT: (RETRY, RETRY, FALLBACK, DEAD, LATE, DEAD),
    ErrorClass.INVALID_RESPONSE: (RETRY, RETRY, FALLBACK, DEAD, LATE, DEAD),
    # The route cannot serve the model: another route may.
    ErrorClass.AUTH: (FALLBACK, DEAD, FALLBACK, DEAD, DEAD, DEAD),
    ErrorClass.NOT_FOUND: (FALLBACK, DEAD, FALLBACK, DEAD, DEAD, DEAD),
    ErrorClass.CONFIGURATION: (FALLBACK, DEAD, FALLBACK, DEAD, DEAD, DEAD),
    # The request's own fault: it would fail anywhere.
    ErrorClass.BAD_REQUEST: (FAILED, FAILED, FAILED, FAILED, FAILED, FAILED),
    ErrorClass.CONTENT_POLICY: (FAILED, FAILED, FAILED, FAILED, FAILED, FAILED),
    ErrorClass.TOO_LARGE: (FAILED, FAILED, FAILED, FAILED, FAILED, FAILED),
    ErrorClass.PROVIDER_JOB_FAILED: (FAILED, FAILED, FAILED, FAILED, FAILED, FAILED),
    ErrorClass.DEADLINE: (FAILED, FAILED, FAILED, FAILED, FAILED, FAILED),
    ErrorClass.JOB_TIMEOUT: (FAILED, FAILED, FAILED, FAILED, FAILED, FAILED),
    # Unplanned: a person should look.
    ErrorClass.WORKER_LOST: (DEAD, DEAD, DEAD, DEAD, DEAD, DEAD),
    ErrorClass.INTERNAL: (DEAD, DEAD, DEAD, DEAD, DEAD, DEAD),
    ErrorClass.UNSTORABLE: (DEAD, DEAD, DEAD, DEAD, DEAD, DEAD),
}

RETRYABLE = {
    ErrorClass.CONNECT,
    ErrorClass.TIMEOUT,
    ErrorClass.RATE_LIMITED,
    ErrorClass.OVERLOADED,
    ErrorClass.SERVER,
    ErrorClass.CONFLICT,
    ErrorClass.INVALID_RESPONSE,
}
JOB_STOPS = {
    ErrorClass.CONFIGURATION,
    ErrorClass.WORKER_LOST,
    ErrorClass.INTERNAL,
    ErrorClass.DEADLINE,
    ErrorClass.JOB_TIMEOUT,
    ErrorClass.UNSTORABLE,
}


def error_of(error_class: ErrorClass) -> AttemptError:
    if error_class in JOB_STOPS:
        return JobStop(error_class, f"{error_class} happened")
    return ProviderError(error_class, f"{error_class} happened", retryable=error_class in RETRYABLE)


def test_the_table_covers_every_error_class() -> None:
    assert set(TABLE) == set(ErrorClass)


CASES = [
    pytest.param(error_class, situation, expected, id=f"{error_class}-{situation}")
    for error_class, row in TABLE.items()
    for situation, expected in zip(SITUATIONS, row, strict=True)
]


@pytest.mark.parametrize(("error_class", "situation", "expected"), CASES)
def test_decide(error_class: ErrorClass, situation: str, expected: object) -> None:
    error = error_of(error_class)
    decision = decide(error, SITUATIONS[situation], backoff=lambda attempt, after: BACKOFF_S)
    if isinstance(expected, Retry | FallBack):
        assert decision == expected
        return
    assert isinstance(decision, End)
    if expected == LATE:
        assert decision.status == JobStatus.FAILED
        assert decision.error.error_class == ErrorClass.DEADLINE
        assert error.message in decision.error.message
        return
    assert decision.status == expected
    assert decision.error is error


def test_retry_after_reaches_the_backoff() -> None:
    error = ProviderError(ErrorClass.RATE_LIMITED, "429", retryable=True, retry_after_s=12.0)
    seen = []
    decision = decide(
        error,
        SITUATIONS["early, no fallback"],
        backoff=lambda attempt, after: seen.append((attempt, after)) or after,
    )
    assert seen == [(1, 12.0)]
    assert decision == Retry(12.0)


def test_the_default_backoff_is_full_jitter_under_the_cap() -> None:
    error = ProviderError(ErrorClass.SERVER, "500", retryable=True)
    decision = decide(error, SITUATIONS["early, no fallback"])
    assert isinstance(decision, Retry)
    assert 0 <= decision.delay_s <= 60
