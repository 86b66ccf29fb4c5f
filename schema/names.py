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
DELIVER_WEBHOOKS = "deliver_webhooks"
DELIVER_DUE_WEBHOOKS = "deliver_due_webhooks"
WEBHOOK_PREFIX = f"{BROKER_NAMESPACE}:wh"

ROUTE_PREFIX = f"{BROKER_NAMESPACE}:route"


def route_hold_key(route: str) -> str:
    """Redis key that, while it exists, holds every job for ``route`` (an operator's pause)."""
    return f"{ROUTE_PREFIX}:{route}:paused"


def route_limit_key(route: str, kind: str) -> str:
    """Redis key of a route's own rate state: ``rpm``/``tpm`` (a GCRA TAT in ms), ``pause``
    (held after a 429 until the ms it holds) or ``inflight`` (a sorted set of leases)."""
    return f"{RATE_LIMIT_PREFIX}:{route}:{kind}"


CONSOLE_PREFIX = f"{BROKER_NAMESPACE}:console"


def console_plan_key(plan_id: str) -> str:
    """Redis hash of a console bulk action: the letters a dry run chose, and its progress."""
    return f"{CONSOLE_PREFIX}:plan:{plan_id}"
