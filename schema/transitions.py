"""Which moves between statuses a job may make: the rule ``store.lifecycle`` applies to every
write of a job's status, kept apart from the writes themselves."""

from schema.errors import IllegalTransitionError
from schema.jobs import JobStatus

QUEUED, RUNNING, WAITING = JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.WAITING
SUCCEEDED, FAILED, CANCELED = JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELED
DEAD_LETTERED = JobStatus.DEAD_LETTERED

TRANSITIONS: dict[JobStatus | None, frozenset[JobStatus]] = {
    None: frozenset({QUEUED}),
    QUEUED: frozenset({RUNNING, QUEUED, CANCELED, FAILED}),
    RUNNING: frozenset({RUNNING, QUEUED, WAITING, SUCCEEDED, FAILED, DEAD_LETTERED, CANCELED}),
    WAITING: frozenset({WAITING, QUEUED, SUCCEEDED, FAILED, DEAD_LETTERED, CANCELED}),
    DEAD_LETTERED: frozenset({QUEUED}),
    SUCCEEDED: frozenset(),
    FAILED: frozenset(),
    CANCELED: frozenset(),
}


def check_move(source: JobStatus | None, target: JobStatus) -> None:
    """Refuse a move the table above does not list."""
    if target not in TRANSITIONS[source]:
        raise IllegalTransitionError(f"a job cannot go from {source or 'nothing'} to {target}")
