"""Dramatiq actors, declared on a given broker so tests and processes each wire their own.

Webhooks have their own queue, so a backlog of deliveries never delays jobs, nor the
reverse."""

import dramatiq

from schema.names import (
    CANCEL_JOB,
    DELIVER_DUE_WEBHOOKS,
    DELIVER_WEBHOOK,
    DELIVER_WEBHOOKS,
    JOBS_QUEUE,
    POLL_JOB,
    RUN_JOB,
    WEBHOOKS_QUEUE,
)
from workers import execution
from workers.context import job_scope
from workers.runtime import Runtime
from workers.webhooks import delivery, due

# Provider failures are retried by genq's own policy (recorded attempts, backoff via the
# outbox). Dramatiq's retries only cover the unplanned: a database hiccup mid-job.
UNPLANNED_RETRIES = {"max_retries": 5, "min_backoff": 1_000, "max_backoff": 60_000}


def declare_actors(runtime: Runtime) -> dict[str, dramatiq.Actor]:
    """Declare genq's actors on ``runtime.broker``; return them by name."""

    def run_job(job_id: str, booked: bool = False) -> None:
        with job_scope(job_id=job_id):
            execution.run_job(runtime, job_id, booked)

    def poll_job(job_id: str) -> None:
        with job_scope(job_id=job_id):
            execution.poll_job(runtime, job_id)

    def cancel_job(job_id: str, provider_job_id: str | None = None, model: str | None = None):
        with job_scope(job_id=job_id):
            execution.cancel_at_provider(runtime, job_id, provider_job_id, model)

    def deliver_webhooks(delivery_ids: list[str]) -> None:
        with job_scope(delivery_id=delivery_ids[0], batch=len(delivery_ids)):
            delivery.deliver(runtime, delivery_ids)

    def deliver_due_webhooks(endpoint_id: str) -> None:
        with job_scope(endpoint_id=endpoint_id):
            due.deliver_due(runtime, endpoint_id)

    def deliver_webhook(delivery_id: str) -> None:
        """A message staged before deliveries went out in batches."""
        deliver_webhooks([delivery_id])

    declared = (
        (RUN_JOB, run_job, JOBS_QUEUE),
        (POLL_JOB, poll_job, JOBS_QUEUE),
        (CANCEL_JOB, cancel_job, JOBS_QUEUE),
        (DELIVER_WEBHOOKS, deliver_webhooks, WEBHOOKS_QUEUE),
        (DELIVER_DUE_WEBHOOKS, deliver_due_webhooks, WEBHOOKS_QUEUE),
        (DELIVER_WEBHOOK, deliver_webhook, WEBHOOKS_QUEUE),
    )
    return {
        name: dramatiq.Actor(
            fn,
            broker=runtime.broker,
            actor_name=name,
            queue_name=queue,
            priority=0,
            options=UNPLANNED_RETRIES,
        )
        for name, fn, queue in declared
    }
