"""Per-tenant enqueue rate on the API, with the ``limits`` library's moving window in Redis,
shared by every API process. A batch of N jobs counts as N."""

import math
import time

from limits import RateLimitItemPerMinute
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter

from schema.errors import LimitExceededError
from schema.names import BROKER_NAMESPACE


class EnqueueRateExceededError(LimitExceededError):
    def __init__(self, limit: int, retry_after_s: int) -> None:
        super().__init__(f"over {limit} jobs per minute")
        self.limit = limit
        self.retry_after_s = retry_after_s


def limits_uri(redis_url: str) -> str:
    """``limits`` names a Unix-socket Redis ``redis+unix://``."""
    return (
        "redis+unix://" + redis_url.removeprefix("unix://")
        if redis_url.startswith("unix://")
        else redis_url
    )


class EnqueueRate:
    def __init__(self, redis_url: str) -> None:
        self.storage = storage_from_string(
            limits_uri(redis_url), key_prefix=f"{BROKER_NAMESPACE}:enq"
        )
        self.limiter = MovingWindowRateLimiter(self.storage)

    def hit(self, tenant_id: str, per_minute: int | None, jobs: int = 1) -> None:
        """Count ``jobs`` against the tenant; raise if that passes its rate."""
        if not per_minute:
            return
        item = RateLimitItemPerMinute(per_minute)
        if jobs > per_minute or not self.limiter.hit(item, tenant_id, cost=jobs):
            reset_at, _ = self.limiter.get_window_stats(item, tenant_id)
            raise EnqueueRateExceededError(per_minute, max(1, math.ceil(reset_at - time.time())))
