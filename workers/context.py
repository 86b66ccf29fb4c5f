"""What a worker knows about the job in hand, for its log lines and its Sentry events.

``job_scope`` opens a block for one message; ``bind_job`` adds what is learned on the way
(tenant, route, model, attempt once the job is claimed; the provider's request id once it
answers). Each field becomes a log field and a Sentry tag, so an error report says which
job, tenant and provider call it came from.
"""

from collections.abc import Iterator
from contextlib import contextmanager

import sentry_sdk

from infra.logs import add_log_context, log_context


@contextmanager
def job_scope(**fields: object) -> Iterator[None]:
    """The block one message runs in. An exception that escapes it is reported here, with
    the job's tags (Dramatiq's own Sentry hook fires after the scope has closed; Sentry's
    dedupe drops that second report)."""
    with sentry_sdk.new_scope(), log_context():
        bind_job(**fields)
        try:
            yield
        except Exception:
            sentry_sdk.capture_exception()
            raise


def bind_job(**fields: object) -> None:
    """Tag the current ``job_scope`` with ``fields``; outside one, do nothing."""
    if not add_log_context(**fields):
        return
    scope = sentry_sdk.get_current_scope()
    for name, value in fields.items():
        scope.set_tag(name, str(value))
