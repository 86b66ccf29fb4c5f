"""What a provider call teaches the shared limits, in one script call: the breaker hears
of each success and failure, the limiter learns from rate-limit headers and gets back
unused tokens, a 429 pauses the whole route, and the slot and probe are given back. It
needs only the ``Admitted`` value, so any thread may run it. Redis errors here only
log: a paid-for result must not be lost to a hiccup in the bookkeeping. A success's
script also reads the version of the tenant's webhook endpoints, which the commit that
follows would otherwise ask Redis for."""

import logging
import math

import redis

from schema.errors import AttemptError, ErrorClass, JobStop
from schema.routes import Route
from store.webhook_targets import version_key
from workers.admission import Admitted
from workers.breaker import PROVIDER_TROUBLE
from workers.execution.calls import Call
from workers.limits import Report
from workers.providers import ProviderResult
from workers.ratelimit import observed, token_refunds
from workers.runtime import Runtime

logger = logging.getLogger(__name__)

DEFAULT_PAUSE_S = 1.0


def report_failure(runtime: Runtime, route: Route, error: AttemptError, admitted: Admitted) -> None:
    """Tell the breaker, and pause the route when the provider says to slow down. A job
    stop says nothing about the provider: what the job held is only given back."""
    if isinstance(error, JobStop):
        give_back(runtime, admitted)
        return
    pause_ms = 0
    if error.error_class == ErrorClass.RATE_LIMITED:
        pause_ms = max(1, math.ceil((error.retry_after_s or DEFAULT_PAUSE_S) * 1000))
    report = Report(failed=error.error_class in PROVIDER_TROUBLE, pause_ms=pause_ms)
    try:
        runtime.limits.settle(admitted.hold, route, report)
    except redis.RedisError:
        logger.warning("could not record a failure on %s", route.name, exc_info=True)


def report_success(
    runtime: Runtime, call: Call, result: ProviderResult, admitted: Admitted
) -> bytes | None:
    """Tell the breaker, learn from the rate-limit headers, give back unused tokens;
    return the version of the tenant's webhook endpoints (None if Redis did not answer)."""
    adjustments = observed(call.route, result.rate_limit_headers)
    usage = result.usage
    if "input_tokens" in usage or "output_tokens" in usage:
        adjustments += token_refunds(
            call.route,
            call.model,
            admitted.hold.tenant_id,
            taken=admitted.tokens,
            booked=admitted.expected_tokens,
            used=usage.get("input_tokens", 0) + usage.get("output_tokens", 0),
        )
    report = Report(False, 0, tuple(adjustments))
    tenant_id = admitted.hold.tenant_id
    try:
        return runtime.limits.settle(admitted.hold, call.route, report, version_key(tenant_id))
    except redis.RedisError:
        logger.warning("could not settle a call on %s", call.route.name, exc_info=True)
        return None


def give_back(runtime: Runtime, admitted: Admitted) -> None:
    """Free the slot and the probe of a job that will not call the provider, or whose call
    is settled already (then at no cost)."""
    try:
        runtime.limits.give_back(admitted.hold)
    except redis.RedisError:
        logger.warning("could not give back capacity on %s", admitted.hold.route, exc_info=True)
