"""Writing an attempt's outcome through the job state machine, then what follows commit:
the staged messages, the ended-job metric and the cache write.

A commit can fail two ways. A transient failure (the database is down or busy) keeps the
provider's answer for the next attempt and lets the message be retried; the job's lease
lapses and whoever takes it over uses the kept answer instead of paying again. Any other
failure (an encoding error, a constraint) would fail the same way forever, so the job is
stopped: dead-lettered with the reason, its cost recorded, never called again.
"""

import logging

from sqlalchemy.exc import DBAPIError, DisconnectionError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.orm import Session

from infra import metrics, reconnect
from infra.scrub import scrub
from schema.errors import ErrorClass
from schema.tables import utcnow
from store import lifecycle, webhook_targets
from store.moves import AttemptRecord, Claim, Moved, Outcome
from workers.context import bind_job
from workers.execution.attempt import Attempted
from workers.runtime import Runtime

logger = logging.getLogger(__name__)

# PostgreSQL error classes that pass (SQLSTATE): connection, transaction rollback
# (serialization, deadlock), insufficient resources, operator intervention (shutdown,
# cancel), lock not available, and a read-only transaction during a failover.
TRANSIENT_CLASSES = frozenset({"08", "40", "53", "57"})
TRANSIENT_STATES = frozenset({"55P03", "25006"})
# Columns of a failed commit's attempt that are numbers, so storable whatever broke.
COUNTS = ("input_tokens", "output_tokens", "images", "video_seconds", "predict_seconds")
BIGINT_MAX = 2**63 - 1


def is_transient(exc: Exception) -> bool:
    """Whether a failed write may succeed if tried again: the database was unreachable or
    busy, not the data wrong. PostgreSQL says which by its SQLSTATE; SQLite only by the
    error's class (a locked or busy database is an ``OperationalError``)."""
    if isinstance(exc, DisconnectionError | PoolTimeoutError):
        return True
    if not isinstance(exc, DBAPIError):
        return False
    if exc.connection_invalidated:
        return True
    state = getattr(exc.orig, "sqlstate", None)
    if state is None:
        return isinstance(exc, OperationalError | InterfaceError)
    return state[:2] in TRANSIENT_CLASSES or state in TRANSIENT_STATES


def commit(runtime: Runtime, claim: Claim, attempted: Attempted | Outcome) -> None:
    """Record the outcome in one transaction if the job is still ours (in one statement
    when it writes nothing else); a result is cached only when it became the job's."""
    if isinstance(attempted, Outcome):
        attempted = Attempted(attempted)
    outcome = attempted.outcome
    if outcome.attempt is not None:
        values = outcome.attempt.values
        route, _, model = claim.current_model.partition("/")
        metrics.attempt_made(route, model, values)
        if values.get("provider_request_id"):
            bind_job(provider_request_id=values["provider_request_id"])
    version = attempted.endpoints_version

    def finish(session: Session) -> Moved:
        if version is not None:
            webhook_targets.note_version(session, claim.tenant_id, version)
        return lifecycle.finish(session, runtime.settings, claim, outcome)

    try:
        moved = _finish_alone(runtime, claim, outcome, version) or reconnect.transaction(
            runtime.sessions.begin, finish
        )
    except Exception as exc:
        if is_transient(exc):
            _keep(runtime, claim, attempted)
            raise
        logger.exception("job %s: its outcome cannot be stored; stopping it", claim.job_id)
        try:
            with runtime.sessions.begin() as session:
                moved = lifecycle.stop(session, runtime.settings, claim, _unstorable(outcome, exc))
        except Exception:
            _keep(runtime, claim, attempted)
            raise
    moved.publish(runtime.sessions, runtime.broker, runtime.sent_marks.add)
    if moved.changed and attempted.cache is not None:
        cache = attempted.cache
        runtime.cache.put(cache.key, cache.value, cache.ttl_s)


def _finish_alone(
    runtime: Runtime, claim: Claim, outcome: Outcome, version: bytes | None
) -> Moved | None:
    """The outcome as one statement committed alone, when it writes nothing else and
    the tenant's endpoints are known without a query; None if not, with nothing written."""
    if runtime.direct is None or version is None:
        return None
    endpoints = webhook_targets.cached(runtime.sessions, claim.tenant_id, version)
    if endpoints is None:
        return None
    return lifecycle.finish_alone(runtime.direct, claim, outcome, endpoints)


def _keep(runtime: Runtime, claim: Claim, attempted: Attempted) -> None:
    if attempted.answer is not None:
        runtime.kept.keep(claim.job_id, claim.current_model, attempted.answer)


def _unstorable(outcome: Outcome, exc: Exception) -> AttemptRecord:
    """The attempt of an outcome that could not be stored: what it used and cost, and why
    the job stops, in values that store whatever broke."""
    values = outcome.attempt.values if outcome.attempt else {}
    reason = scrub(
        f"the outcome could not be stored ({type(exc).__name__}); "
        "the job was stopped so that the provider is not called again"
    )
    return AttemptRecord(
        {
            **{key: _clamp(values[key]) for key in COUNTS if key in values},
            "status": "failed",
            "error_class": ErrorClass.UNSTORABLE,
            "error_message": reason,
            "cost_micros": _clamp(outcome.spent_micros),
            "finished_at": utcnow(),
        }
    )


def _clamp(number: float) -> float:
    """A count the database can hold, however wrong the provider's figure."""
    return max(0, min(number, BIGINT_MAX))
