"""Queue and actor names: the contract between producers and workers.

Producers send Dramatiq messages by these names without importing the workers.
"""

BROKER_NAMESPACE = "genq"
JOBS_QUEUE = "genq.jobs"
RUN_JOB = "run_job"
POLL_JOB = "poll_job"
CANCEL_JOB = "cancel_job"
RATE_LIMIT_PREFIX = f"{BROKER_NAMESPACE}:rl"


def active_tenants_key(route: str) -> str:
    """Redis sorted set of tenants with work on a route, scored by when last seen (ms)."""
    return f"{RATE_LIMIT_PREFIX}:{route}:tenants"


WEBHOOKS_QUEUE = "genq.webhooks"
DELIVER_WEBHOOK = "deliver_webhook"
WEBHOOK_PREFIX = f"{BROKER_NAMESPACE}:wh"
