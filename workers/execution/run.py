"""``run_job``: admit a queued job, claim it, make one attempt and commit what came of it."""

import logging
import random
from dataclasses import dataclass

from sqlalchemy.orm import Session

from infra import reconnect
from infra.scrub import scrub
from schema.errors import AttemptError, ErrorClass, JobStop
from schema.jobs import JobStatus
from schema.names import RUN_JOB
from schema.pricing import max_cost_micros
from schema.tables import OutboxMessage, utcnow
from store import lifecycle, outbox
from store.moves import Claim, JobHead, Outcome
from workers.admission import Admitted, CircuitOpen, Deferred, admit, defer
from workers.execution.attempt import Attempted, attempt
from workers.execution.calls import Call, chain, next_in_chain, prepare
from workers.execution.claims import bind, lease_s, recheck_later
from workers.execution.commit import commit
from workers.execution.feedback import give_back, report_failure
from workers.execution.outcomes import Started, after_failure, attempt_record, situation_of
from workers.execution.policy import decide
from workers.runtime import Runtime

logger = logging.getLogger(__name__)


def run_job(runtime: Runtime, job_id: str, booked: bool = False) -> None:
    """Execute ``job_id`` once if it is ours to run; otherwise leave it be.

    A queued job first passes admission (circuit, rate limits, in-flight slots); waiting
    there re-enqueues the message and costs no attempt.
    """
    job = reconnect.transaction(runtime.sessions, lambda session: lifecycle.head(session, job_id))
    if job is None:
        logger.warning("run_job: no job %s", job_id)
        return
    admitted = None
    takeover = None
    lapsed = job.lease_expires_at is not None and job.lease_expires_at < utcnow()
    if job.status == JobStatus.QUEUED or (job.status == JobStatus.RUNNING and lapsed):
        try:
            call = prepare(runtime.routes, job.model, job.current_model, job.input)
        except JobStop:
            call = None
        if job.status == JobStatus.RUNNING:
            takeover = _takeover(runtime, job, call)
        if call is not None:
            verdict = admit(runtime, job, call.route, call.model, call.input, booked)
            if isinstance(verdict, CircuitOpen):
                if not _fall_back_now(runtime, job):
                    wait_ms = verdict.wait_ms + random.randint(0, 1000)
                    defer(runtime, job_id, call.route.name, Deferred(wait_ms, booked))
                return
            if isinstance(verdict, Deferred):
                defer(runtime, job_id, call.route.name, verdict)
                return
            admitted = verdict
    try:
        _run_claimed(runtime, job, admitted, takeover)
    finally:
        if admitted is not None:
            give_back(runtime, admitted)


@dataclass(frozen=True)
class Takeover:
    """A job taken over from its previous worker: what that worker's open attempt is taken
    to have cost, and whether it kept its answer (it failed to commit, it was not lost)."""

    lost_cost_micros: int
    kept: bool


def _takeover(runtime: Runtime, job: JobHead, call: Call | None) -> Takeover:
    """The request's maximum cost stands for a lost attempt; a kept answer's real cost is
    recorded by the attempt that uses it."""
    if runtime.kept.holds(job.id, job.current_model):
        return Takeover(0, kept=True)
    if call is None:
        return Takeover(0, kept=False)
    return Takeover(max_cost_micros(call.route.protocol, call.spec, call.input), kept=False)


def _run_claimed(
    runtime: Runtime, job: JobHead, admitted: Admitted | None, takeover: Takeover | None
) -> bool:
    """Claim the job and run one attempt; False if it was not ours to run."""

    def take(session: Session) -> tuple[Claim | None, OutboxMessage | None]:
        claim = lifecycle.claim(
            session,
            job.id,
            lease_s(runtime, job.current_model),
            taking_over=takeover is not None,
            lost_cost_micros=takeover.lost_cost_micros if takeover else 0,
            kept=bool(takeover and takeover.kept),
        )
        recheck = None if claim else recheck_later(session, job.id, RUN_JOB, JobStatus.RUNNING)
        return claim, recheck

    claim, recheck = reconnect.transaction(runtime.sessions, take)
    if recheck is not None:
        outbox.send(runtime.sessions, runtime.broker, [recheck])
    if claim is None:
        return False
    bind(claim)
    started = Started()
    call = None
    kept = runtime.kept.take(claim.job_id, claim.current_model) if takeover else None
    try:
        call = prepare(runtime.routes, claim.model, claim.current_model, claim.input)
        if kept is None:
            _check_may_call(runtime, claim)
        attempted = attempt(runtime, claim, call, started, admitted, kept)
    except AttemptError as error:
        if call is not None and admitted is not None:
            report_failure(runtime, call.route, error, admitted)
        attempted = Attempted(_failed(runtime, claim, call, error, started))
    except Exception as exc:
        logger.exception("run_job: %s broke in the adapter", job.id)
        broke = JobStop(ErrorClass.INTERNAL, scrub(f"{type(exc).__name__}: {exc}"))
        attempted = Attempted(_failed(runtime, claim, None, broke, started))
    commit(runtime, claim, attempted)
    return True


def _check_may_call(runtime: Runtime, claim: Claim) -> None:
    """Stop a job whose workers keep dying, or whose deadline passed, before it calls. A job
    with a kept answer skips this: the provider already answered, and was paid."""
    if claim.lost_workers >= runtime.settings.job_max_lost_workers:
        lost = (
            f"the job's worker was lost {claim.lost_workers} times in a row; "
            "the job itself may be what kills them"
        )
        raise JobStop(ErrorClass.WORKER_LOST, lost)
    if claim.deadline_at is not None and utcnow() >= claim.deadline_at:
        raise JobStop(ErrorClass.DEADLINE, "the job's deadline passed")


def _failed(
    runtime: Runtime, claim: Claim, call: Call | None, error: AttemptError, started: Started
) -> Outcome:
    """Retry, fall back or end, as the policy decides."""
    attempt = attempt_record("failed", started, error=error)
    return after_failure(error, decide(error, situation_of(runtime.routes, claim, call)), attempt)


def _fall_back_now(runtime: Runtime, job: JobHead) -> bool:
    """Move a queued job off a route whose circuit is open, if it has somewhere to go."""
    fallback = next_in_chain(chain(runtime.routes, job.model), job.current_model)
    if fallback is None:
        return False
    with runtime.sessions.begin() as session:
        row = lifecycle.move_to_fallback(session, job.id, job.current_model, fallback)
    if row is not None:
        logger.info("job %s: circuit open on %s, now on %s", job.id, job.route, fallback)
        outbox.send(runtime.sessions, runtime.broker, [row])
    return True
