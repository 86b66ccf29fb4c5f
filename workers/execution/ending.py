"""How an attempt ends, wherever its call was made: what the attempt came to, or the
retry, fallback or end the policy decides for its failure, committed through the job
state machine."""

import logging
from collections.abc import Callable

from infra.scrub import scrub
from schema.errors import AttemptError, ErrorClass, JobStop
from store.moves import Claim, Outcome
from workers.admission import Admitted
from workers.execution.attempt import Attempted
from workers.execution.calls import Call
from workers.execution.commit import commit
from workers.execution.feedback import report_failure
from workers.execution.outcomes import Started, after_failure, attempt_record, situation_of
from workers.execution.policy import decide
from workers.runtime import Runtime

logger = logging.getLogger(__name__)


def conclude(
    runtime: Runtime,
    claim: Claim,
    call: Call | None,
    admitted: Admitted | None,
    started: Started,
    attempted: Callable[[], Attempted | None],
) -> bool:
    """Commit what ``attempted()`` gives and return True; a failure it raises is reported
    to the shared limits and becomes the policy's decision, and anything unplanned stops
    the job. False when ``attempted()`` handed the call over: there is nothing to commit
    yet."""
    try:
        done = attempted()
        if done is None:
            return False
    except AttemptError as error:
        if call is not None and admitted is not None:
            report_failure(runtime, call.route, error, admitted)
        done = Attempted(failed(runtime, claim, call, error, started))
    except Exception as exc:
        logger.exception("run_job: %s broke in the adapter", claim.job_id)
        broke = JobStop(ErrorClass.INTERNAL, scrub(f"{type(exc).__name__}: {exc}"))
        done = Attempted(failed(runtime, claim, None, broke, started))
    commit(runtime, claim, done)
    return True


def failed(
    runtime: Runtime, claim: Claim, call: Call | None, error: AttemptError, started: Started
) -> Outcome:
    """Retry, fall back or end, as the policy decides."""
    attempt = attempt_record("failed", started, error=error)
    return after_failure(error, decide(error, situation_of(runtime.routes, claim, call)), attempt)
