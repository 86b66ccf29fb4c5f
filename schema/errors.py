"""The one error tree of genq. Every error genq raises on purpose is a ``GenqError``:

- ``RequestError``: what a caller asked for cannot be done. The API answers each with a 4xx
  and the command line with exit 2; nothing was written.
- ``AttemptError``: why an attempt at a job produced no result. Its two branches are the
  provider's failures (``workers.providers.ProviderError``, with the provider's hints) and
  ``JobStop``, genq's own reasons to stop a job that say nothing about the provider.
- ``IllegalTransitionError``: code asked the job state machine for a move it does not make.
"""

from dataclasses import dataclass
from enum import StrEnum

Loc = tuple[str | int, ...]


class ErrorClass(StrEnum):
    """Why an attempt failed, as attempt rows, jobs and dead letters record it."""

    CONNECT = "connect_error"
    TIMEOUT = "timeout"
    RATE_LIMITED = "rate_limited"
    OVERLOADED = "overloaded"
    SERVER = "server_error"
    CONFLICT = "conflict"
    BAD_REQUEST = "bad_request"
    CONTENT_POLICY = "content_policy"
    AUTH = "auth_error"
    NOT_FOUND = "not_found"
    TOO_LARGE = "too_large"
    INVALID_RESPONSE = "invalid_response"
    PROVIDER_JOB_FAILED = "provider_job_failed"
    CONFIGURATION = "configuration_error"
    WORKER_LOST = "worker_lost"
    INTERNAL = "internal_error"
    DEADLINE = "deadline_exceeded"
    JOB_TIMEOUT = "provider_job_timeout"
    UNSTORABLE = "unstorable_outcome"


class GenqError(Exception):
    """The root of every error genq raises on purpose."""


class RequestError(GenqError):
    """A request that cannot be carried out as asked; it changed nothing."""


@dataclass(frozen=True)
class FieldError:
    loc: Loc
    message: str


class InvalidInputError(RequestError, ValueError):
    """Well-formed input with bad fields: an unknown model, a bad input, an unsafe URL."""

    def __init__(self, errors: list[FieldError]) -> None:
        super().__init__("; ".join(f"{'.'.join(map(str, e.loc))}: {e.message}" for e in errors))
        self.errors = errors


class ConflictError(RequestError, ValueError):
    """The request clashes with what exists: a reused key, a finished job, a taken name."""


class NotFoundError(RequestError, LookupError):
    """Something the request names does not exist."""


class LimitExceededError(RequestError):
    """The request passes a limit: a budget, an enqueue rate, a quota."""


class SignatureError(RequestError, ValueError):
    """A provider callback that is not verifiably the provider's; the message says why."""


class AttemptError(GenqError):
    """Why an attempt at a job produced no result."""

    def __init__(
        self,
        error_class: ErrorClass,
        message: str,
        *,
        retryable: bool,
        http_status: int | None = None,
        retry_after_s: float | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.error_class = error_class
        self.message = message
        self.retryable = retryable
        self.http_status = http_status
        self.retry_after_s = retry_after_s
        self.request_id = request_id


class JobStop(AttemptError):
    """genq's own reason to stop a job: its worker was lost, its deadline passed, its route
    cannot carry it, its provider job ran too long, or code broke. Never retried on the
    same route, and never held against the provider."""

    def __init__(self, error_class: ErrorClass, message: str) -> None:
        super().__init__(error_class, message, retryable=False)


class IllegalTransitionError(GenqError):
    """The job state machine was asked for a move its table does not allow."""
