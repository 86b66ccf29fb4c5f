"""What a provider call teaches the shared limits: the breaker hears of each success and
failure, the limiter learns from rate-limit headers and gets back unused tokens, and a
429 pauses the whole route. Redis errors here only log: a paid-for result must not be
lost to a hiccup in the bookkeeping."""

import logging

import redis

from schema.errors import AttemptError, ErrorClass, JobStop
from schema.routes import Route
from workers.admission import Admitted
from workers.execution.calls import Call
from workers.providers import ProviderResult
from workers.runtime import Runtime

logger = logging.getLogger(__name__)

DEFAULT_PAUSE_S = 1.0


def report_failure(runtime: Runtime, route: Route, error: AttemptError, admitted: Admitted) -> None:
    """Tell the breaker, and pause the route when the provider says to slow down. A job
    stop says nothing about the provider: a probe it held is only given back."""
    try:
        if isinstance(error, JobStop):
            if admitted.probe:
                runtime.breaker.release_probe(route.name)
            return
        runtime.breaker.record(route, error.error_class, admitted.probe)
        if error.error_class == ErrorClass.RATE_LIMITED:
            runtime.limiter.pause(route, error.retry_after_s or DEFAULT_PAUSE_S)
    except redis.RedisError:
        logger.warning("could not record a failure on %s", route.name, exc_info=True)


def report_success(
    runtime: Runtime, call: Call, tenant_id: str, result: ProviderResult, admitted: Admitted
) -> None:
    """Tell the breaker, learn from the rate-limit headers, give back unused tokens."""
    try:
        runtime.breaker.record(call.route, None, admitted.probe)
        runtime.limiter.observe(call.route, result.rate_limit_headers)
        usage = result.usage
        if "input_tokens" in usage or "output_tokens" in usage:
            runtime.limiter.settle_tokens(
                call.route,
                call.model,
                tenant_id,
                taken=admitted.tokens,
                booked=admitted.expected_tokens,
                used=usage.get("input_tokens", 0) + usage.get("output_tokens", 0),
            )
    except redis.RedisError:
        logger.warning("could not settle a call on %s", call.route.name, exc_info=True)
