"""``run_job``: admit a queued job, claim it, make one attempt and commit what came of it.

In a worker process with a call loop, a call to a protocol that answers in one response
(chat, messages, images) is handed to the loop once the job is claimed and recorded, and
the thread goes on to its next message; everything else (a cache hit, a kept answer, an
async provider job's submit) is done on the thread.
"""

import logging
import random
from dataclasses import dataclass

from infra import reconnect
from schema.errors import ErrorClass, JobStop
from schema.jobs import JobStatus
from schema.names import RUN_JOB
from schema.pricing import max_cost_micros
from schema.tables import utcnow
from store import lifecycle, outbox
from store.moves import Claim, JobHead
from workers.admission import Admitted, CircuitOpen, Deferred, admit, defer
from workers.execution.attempt import Attempted, attempt, cached
from workers.execution.calls import Call, chain, next_in_chain, prepare
from workers.execution.claims import bind, lease_s, recheck_later
from workers.execution.commit import commit
from workers.execution.ending import conclude, failed
from workers.execution.handover import Capacity, hand_over
from workers.execution.outcomes import Started
from workers.runtime import Runtime

logger = logging.getLogger(__name__)


def run_job(runtime: Runtime, job_id: str, booked: bool = False) -> None:
    """Execute ``job_id`` once if it is ours to run; otherwise leave it be.

    A queued job first takes a place on the call loop (when its call is to go there), then
    passes admission (circuit, rate limits, in-flight slots); waiting there re-enqueues the
    message and costs no attempt.
    """
    job = runtime.alone(lambda db: lifecycle.head(db, job_id))
    if job is None:
        logger.warning("run_job: no job %s", job_id)
        return
    hold = Capacity()
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
            if runtime.calls is not None and not call.route.is_async:
                hold.loop = runtime.calls
                hold.loop.take_place()
            try:
                hold.admitted = _admit(runtime, job, call, booked)
            except BaseException:
                hold.let_go(runtime)
                raise
            if hold.admitted is None:
                hold.let_go(runtime)
                return
    handed_over = False
    try:
        handed_over = _run_claimed(runtime, job, hold, takeover)
    finally:
        if not handed_over:
            hold.let_go(runtime)


def _admit(runtime: Runtime, job: JobHead, call: Call, booked: bool) -> Admitted | None:
    """Admission's capacity for the call; None when the job was put off or moved to its
    fallback instead."""
    verdict = admit(runtime, job, call.route, call.model, call.input, booked)
    if isinstance(verdict, CircuitOpen):
        if not _fall_back_now(runtime, job):
            wait_ms = verdict.wait_ms + random.randint(0, 1000)
            defer(runtime, job.id, call.route.name, Deferred(wait_ms, booked))
        return None
    if isinstance(verdict, Deferred):
        defer(runtime, job.id, call.route.name, verdict)
        return None
    return verdict


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


def _run_claimed(runtime: Runtime, job: JobHead, hold: Capacity, takeover: Takeover | None) -> bool:
    """Claim the job and run one attempt; True if its call was handed over to the loop,
    which then ends the attempt. On PostgreSQL a job not being taken over is claimed by one
    statement committed alone; a job another worker holds gets a message for when its
    lease ends."""
    lease = lease_s(runtime, job.current_model)
    if runtime.direct is not None and takeover is None:
        claim = lifecycle.claim_alone(runtime.direct, job.id, lease)
    else:
        claim = reconnect.transaction(
            runtime.sessions.begin,
            lambda session: lifecycle.claim(
                session,
                job.id,
                lease,
                taking_over=takeover is not None,
                lost_cost_micros=takeover.lost_cost_micros if takeover else 0,
                kept=bool(takeover and takeover.kept),
            ),
        )
    if claim is None:
        recheck = reconnect.transaction(
            runtime.sessions.begin,
            lambda session: recheck_later(session, job.id, RUN_JOB, JobStatus.RUNNING),
        )
        if recheck is not None:
            outbox.send(runtime.sessions, runtime.broker, [recheck])
        return False
    return _attempt_claimed(runtime, claim, hold, takeover)


def _attempt_claimed(
    runtime: Runtime, claim: Claim, hold: Capacity, takeover: Takeover | None
) -> bool:
    """Run one attempt of the claimed job; True if its call was handed over to the loop."""
    bind(claim)
    started = Started()
    kept = runtime.kept.take(claim.job_id, claim.current_model) if takeover else None
    try:
        call = prepare(runtime.routes, claim.model, claim.current_model, claim.input)
    except JobStop as stop:
        commit(runtime, claim, failed(runtime, claim, None, stop, started))
        return False

    def attempted() -> Attempted | None:
        if kept is not None:
            return attempt(runtime, claim, call, started, hold.admitted, kept)
        _check_may_call(runtime, claim)
        if hold.loop is None or call.route.is_async:
            return attempt(runtime, claim, call, started, hold.admitted)
        key, hit = cached(runtime, claim, call, started, hold.admitted)
        if hit is not None:
            return hit
        hand_over(runtime, claim, call, started, hold, key)
        return None

    return not conclude(runtime, claim, call, hold.admitted, started, attempted)


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
