"""The job state machine: with ``store.job_interventions``, the only code that changes a
job's status. This module holds the moves of the job's own life (submit, claim, attempt
and outcome); that one, the moves made from outside it (cancel, expire, restart).

Every move is one conditional UPDATE in the caller's transaction, so two actors racing for
the same job (a worker finishing it, a tenant canceling it, the deadline sweep) each win or
lose cleanly. A move that ends a job gives back its budget reservation and records its
webhook event in the same transaction; what must happen after commit (send the staged
messages, count the ended job) is returned as ``Moved`` and done by ``Moved.publish``.

move              from -> to                        caller               also writes
----------------  --------------------------------  -------------------  ----------------------
insert            (new) -> queued                   store.submissions    its run_job message
claim             queued, or running past its       execution.run        lease, attempt counts,
                    lease -> running                                       started_at, the
                                                                           attempt's row
claim_poll        waiting, lease free -> waiting    execution.poll       poll lease, polls + 1
move_to_fallback  queued -> queued                  execution.run        next model, run_job
finish            running -> queued, waiting,       execution.commit     the attempt, its cost,
                    succeeded, failed,                                     the budget, a dead
                    dead_lettered                                          letter, the event,
                  waiting -> waiting, queued,                              the next message
                    succeeded, failed,
                    dead_lettered
cancel            queued, running, waiting          producers (API and   reservation released,
                    -> canceled                       Producer)            event, cancel_job
expire            queued past its deadline          workers.sweeps       reservation released,
                    -> failed                                              event
restart           dead_lettered -> queued           store.dlq (requeue)  reservation, run_job

(``execution`` is ``workers.execution``; ``cancel``, ``expire`` and ``restart`` are in
``store.job_interventions``.)

Any other move is refused with ``IllegalTransitionError`` (the table: ``schema.transitions``).
"""

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from infra import db
from infra.direct import Executes
from schema.errors import ErrorClass
from schema.jobs import TERMINAL_STATUSES
from schema.names import CANCEL_JOB, JOBS_QUEUE, RUN_JOB
from schema.settings import Settings
from schema.tables import Job, OutboxMessage, utcnow
from schema.transitions import (
    CANCELED,
    DEAD_LETTERED,
    QUEUED,
    RUNNING,
    WAITING,
    check_move,
)
from store import attempts, budgets, deadletters, outbox, webhook_events, webhook_targets
from store.job_statements import (
    CLAIM,
    CLAIM_AND_START,
    CLAIM_POLL,
    FINISH,
    HEAD,
    INSERT_JOB,
    finish_and_close,
    finish_params,
    insert_reserved,
)
from store.moves import (
    JOBS,
    AttemptRecord,
    Claim,
    Ended,
    JobHead,
    JobRow,
    Moved,
    Outcome,
    queued_row,
)

logger = logging.getLogger(__name__)


def insert(session: Session, **columns: Any) -> tuple[JobRow, OutboxMessage]:
    """Write a queued job and stage its run_job message, in the caller's transaction;
    return the job as written, beside its message."""
    check_move(None, QUEUED)
    job, row = queued_row(QUEUED, columns)
    session.execute(INSERT_JOB, row)
    return job, outbox.stage(session, JOBS_QUEUE, RUN_JOB, {"job_id": job.id})


def insert_reserving(
    connection: Executes, budget_period: str, **columns: Any
) -> tuple[JobRow, OutboxMessage] | None:
    """Write a queued job and its run_job message, and reserve its ``reserved_micros`` in
    its ``budget_period_start``, in one statement committed alone (PostgreSQL); the
    reservation checks that the tenant's period is still ``budget_period``.

    None, with nothing written, when the reservation did not hold (the period moved, its
    row is not made yet, the limit would be passed). A key the tenant used before raises
    ``IntegrityError``. A statement run again after its answer was lost (``Direct`` runs
    a statement again on a dropped connection) finds its own job already written, and
    with it everything else: that is its answer, read back."""
    check_move(None, QUEUED)
    job, row = queued_row(QUEUED, columns)
    message = outbox.message_values(JOBS_QUEUE, RUN_JOB, {"job_id": job.id})
    params = budgets.reservation(
        tenant_id=job.tenant_id,
        start=columns["budget_period_start"],
        amount_micros=columns["reserved_micros"],
    )
    params["b_period"] = budget_period
    params |= {f"j_{name}": value for name, value in row.items()}
    params |= {f"o_{name}": value for name, value in message.items()}
    statement = insert_reserved(frozenset(row), frozenset(message))
    try:
        staged = connection.execute(statement, params).one_or_none()
    except IntegrityError as exc:
        if db.violated(exc) != JOBS.primary_key.name:
            raise
        found = {"message_id": message["message_id"]}
        staged = connection.execute(outbox.STAGED, found).one_or_none()
    return None if staged is None else (job, OutboxMessage(id=staged[0], **message))


def head(connection: Executes, job_id: str) -> JobHead | None:
    """The few columns a worker needs to admit a job and decide whether to claim it."""
    row = connection.execute(HEAD, {"job_id": job_id}).one_or_none()
    return None if row is None else JobHead(*row)


def claim(
    session: Session,
    job_id: str,
    lease_s: float,
    *,
    taking_over: bool = False,
    lost_cost_micros: int = 0,
    kept: bool = False,
) -> Claim | None:
    """Take a queued job (or one whose worker's lease lapsed) for a new attempt and write the
    attempt's row before any call may start; None if another worker holds it.

    On PostgreSQL the job's UPDATE and the attempt's INSERT are one statement. Taking over
    from a lost worker counts a lost worker, not a route attempt, and closes the lost
    attempt as ``lost`` with ``lost_cost_micros``, its cost estimated from the request, on
    the job's cost and the tenant's budget. A worker that only failed to commit and
    ``kept`` its answer is not counted as lost; the answer's cost comes with the attempt
    that uses it.
    """
    now = utcnow()
    params = _claim_params(job_id, now, lease_s, lost=0 if kept else 1)
    in_one = session.get_bind().dialect.name == "postgresql"
    claimed = session.execute(CLAIM_AND_START if in_one else CLAIM, params).one_or_none()
    if claimed is None:
        return None
    held = Claim(job_id, RUNNING, *claimed)
    if not in_one:
        attempts.start(session, held, now)
    if taking_over:
        attempts.close_lost(session, held, lost_cost_micros, kept=kept)
    return held


def claim_alone(connection: Executes, job_id: str, lease_s: float) -> Claim | None:
    """``claim`` of a job that is not being taken over, as its one statement (PostgreSQL),
    committed alone: one round trip takes the job and writes its attempt's row, or changes
    nothing."""
    params = _claim_params(job_id, utcnow(), lease_s, lost=1)
    claimed = connection.execute(CLAIM_AND_START, params).one_or_none()
    return None if claimed is None else Claim(job_id, RUNNING, *claimed)


def _claim_params(job_id: str, now: datetime, lease_s: float, lost: int) -> dict[str, Any]:
    return {
        "job_id": job_id,
        "now": now,
        "lease_until": now + timedelta(seconds=lease_s),
        "lost": lost,
    }


def claim_poll(db: Session | Executes, job_id: str, lease_s: float) -> Claim | None:
    """Take a waiting job for one poll; None if another worker is polling it. The claim
    comes with when the provider job was submitted and seen started. One statement: on
    PostgreSQL a worker commits it alone."""
    now = utcnow()
    params = {"job_id": job_id, "now": now, "lease_until": now + timedelta(seconds=lease_s)}
    claimed = db.execute(CLAIM_POLL, params).one_or_none()
    return None if claimed is None else Claim(job_id, WAITING, *claimed)


def move_to_fallback(
    session: Session, job_id: str, current_model: str, fallback: str
) -> OutboxMessage | None:
    """Put a queued job on the next model of its chain (its route's circuit is open)."""
    check_move(QUEUED, QUEUED)
    moved = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.status == QUEUED, Job.current_model == current_model)
        .values(
            current_model=fallback,
            route=fallback.partition("/")[0],
            route_attempts=0,
            updated_at=utcnow(),
        )
    ).rowcount
    if not moved:
        return None
    return outbox.stage(session, JOBS_QUEUE, RUN_JOB, {"job_id": job_id})


def finish(
    session: Session, settings: Settings, held: Claim, outcome: Outcome, *, guarded: bool = False
) -> Moved:
    """Record an attempt's outcome and move the job on, if the claim still holds.

    The one place that settles spend, releases a reservation, dead-letters, records the
    event and stages the next message (``finish_alone`` is its one statement, for an
    outcome that needs none of the last three). A job canceled or taken over meanwhile
    keeps the attempt and its cost, and nothing else changes.
    """
    check_move(held.held, outcome.status)
    columns, released = _finished_columns(held, outcome)
    job, closed = _write(session, held, outcome, columns, released)
    if not closed:
        unbooked = attempts.book(session, held, outcome, moved=job is not None, released=released)
        if unbooked and job is not None:
            job = job._replace(cost_micros=job.cost_micros + unbooked)
    if job is None:
        logger.info("job %s was canceled or taken over; kept the attempt", held.job_id)
        stop = _stop_orphan(session, held, outcome.values.get("provider_job_id"))
        return Moved(messages=[stop] if stop is not None else [], changed=False)
    moved = Moved()
    if outcome.status == DEAD_LETTERED:
        error = outcome.values["error"]
        kind, message = error["type"], error["message"]
        letter = partial(deadletters.record_job, session, held.job_id, kind, message)
        db.guarded(session, guarded, lambda bare: letter(bare=bare))
    if (next_message := outcome.next) is not None:
        payload = {"job_id": held.job_id}
        row = outbox.stage(session, JOBS_QUEUE, next_message.actor, payload, next_message.delay_s)
        moved.messages.append(row)
    if _announces(held, outcome):
        announced = db.guarded(
            session,
            guarded,
            lambda bare: announce(session, settings, job) if not bare else Moved(ended=[job]),
        )
        moved.add(announced)
    return moved


def finish_alone(
    connection: Executes,
    held: Claim,
    outcome: Outcome,
    endpoints: Sequence[webhook_targets.EndpointRow] | None,
) -> Moved | None:
    """``finish`` as its one statement committed alone (PostgreSQL), for an outcome that
    writes nothing beside the job, its attempt and its cost: no dead letter, no next
    message and no event (``endpoints``, the tenant's as cached, and the job's own URL
    say who listens; None: unknown). None, with nothing written, when it cannot be: the
    outcome writes more, or the job or its attempt moved meanwhile. The caller then runs
    ``finish``, which handles both."""
    check_move(held.held, outcome.status)
    attempt = outcome.attempt
    if (
        attempt is None
        or endpoints is None
        or outcome.status == DEAD_LETTERED
        or outcome.next is not None
        or connection.dialect.name != "postgresql"
    ):
        return None
    announces = _announces(held, outcome)
    if announces and webhook_events.listened(
        outcome.status, held.webhook_url, held.webhook_events, endpoints
    ):
        return None
    columns, released = _finished_columns(held, outcome)
    statement, params = finish_and_close(
        held, columns, attempt.values, outcome.spent_micros, released, alone=True
    )
    written = connection.execute(statement, params).one_or_none()
    if written is None:
        return None
    job = Ended(*written[: len(Ended._fields)])
    return Moved(ended=[job] if job.status in TERMINAL_STATUSES else [])


def _finished_columns(held: Claim, outcome: Outcome) -> tuple[dict[str, Any], int]:
    """The job's columns after ``outcome``, and the reservation it releases."""
    now = utcnow()
    columns: dict[str, Any] = {
        **outcome.values,
        "status": outcome.status,
        "lost_workers": 0,
        "lease_expires_at": None,
        "updated_at": now,
    }
    if outcome.status not in TERMINAL_STATUSES:
        return columns, 0
    columns |= {"reserved_micros": 0, "next_poll_at": None, "finished_at": now}
    return columns, held.reserved_micros


def _announces(held: Claim, outcome: Outcome) -> bool:
    """Whether the move has an event: the job ended, or its provider job started."""
    started = outcome.status == WAITING and held.held == RUNNING
    return outcome.status in TERMINAL_STATUSES or started


def _write(
    session: Session, held: Claim, outcome: Outcome, columns: dict[str, Any], released: int
) -> tuple[JobRow | None, bool]:
    """The job's new row (None if the claim no longer holds) and whether its attempt was
    closed and the budget settled with it, which PostgreSQL does in the same statement
    when the job moved and its attempt was open. The job's row first, then the attempt's:
    the order a claim takes them in."""
    spent = outcome.spent_micros
    in_one = outcome.attempt is not None and session.get_bind().dialect.name == "postgresql"
    if in_one:
        statement, params = finish_and_close(held, columns, outcome.attempt.values, spent, released)
    else:
        statement, params = FINISH, columns | finish_params(held, spent)
    written = session.execute(statement, params).one_or_none()
    if written is None:
        return None, False
    return JobRow(*written[: len(JobRow._fields)]), in_one and written[-1]


def stop(session: Session, settings: Settings, held: Claim, attempt: AttemptRecord) -> Moved:
    """End a job whose outcome cannot be stored (an encoding error, a constraint): it is
    dead-lettered with the reason, its attempt closed with what it cost, its reservation
    released, and it is never called again. Its dead letter and event are written as they
    can be: without its metadata, or not at all, when its own fields cannot be stored."""
    reason = attempt.values["error_message"]
    error = {"type": ErrorClass.UNSTORABLE.value, "message": reason}
    outcome = Outcome(DEAD_LETTERED, {"error": error}, attempt, attempt.values["cost_micros"])
    return finish(session, settings, held, outcome, guarded=True)


def announce(session: Session, settings: Settings, job: JobRow) -> Moved:
    """The job's webhook event; an ended job is also counted after commit."""
    ended = [job] if job.status in TERMINAL_STATUSES else []
    return Moved(messages=webhook_events.job_event(session, settings, job), ended=ended)


def _stop_orphan(
    session: Session, held: Claim, provider_job_id: str | None
) -> OutboxMessage | None:
    """A provider job accepted for a job that was canceled or taken over meanwhile is
    stopped at the provider, so it does not run on unpaid-for: a canceled job that has
    none adopts its id; otherwise the message names the provider job and its model."""
    if not provider_job_id:
        return None
    adopted = session.execute(
        update(Job)
        .where(Job.id == held.job_id, Job.status == CANCELED, Job.provider_job_id.is_(None))
        .values(provider_job_id=provider_job_id)
    ).rowcount
    orphan = {"provider_job_id": provider_job_id, "model": held.current_model}
    return outbox.stage(
        session, JOBS_QUEUE, CANCEL_JOB, {"job_id": held.job_id, **({} if adopted else orphan)}
    )
