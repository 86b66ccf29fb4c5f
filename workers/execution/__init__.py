"""Running jobs: claim one, call the provider (or the cache), and move it on through the
job state machine: succeeded, waiting on an async provider job, retried, handed to a
fallback route, failed or dead-lettered.

Execution is at-least-once, the outcome exactly-once: a job is claimed with a conditional
UPDATE (queued, or running with an expired lease), and every outcome is written only while
the claim is still ours (same status and attempt number), so a re-delivered message for a
finished job changes nothing. Provider calls happen outside any transaction.
"""

from workers.execution.poll import cancel_at_provider, poll_job
from workers.execution.run import run_job

__all__ = ["cancel_at_provider", "poll_job", "run_job"]
