"""Test sends per webhook endpoint, with the ``limits`` library's moving window in Redis,
shared by every API process: a test send is a signed POST to a URL the tenant chose, so
their number is bounded like the endpoints' own."""

import math
import time

from limits import RateLimitItemPerMinute
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter

from producers.enqueue_rate import limits_uri
from schema.errors import LimitExceededError
from schema.names import BROKER_NAMESPACE


class WebhookTestRateExceededError(LimitExceededError):
    def __init__(self, limit: int, retry_after_s: int) -> None:
        super().__init__(
            f"an endpoint may get {limit} test sends per minute; retry in {retry_after_s}s"
        )
        self.limit = limit
        self.retry_after_s = retry_after_s


class WebhookTestRate:
    def __init__(self, redis_url: str, per_minute: int) -> None:
        storage = storage_from_string(limits_uri(redis_url), key_prefix=f"{BROKER_NAMESPACE}:wht")
        self.limiter = MovingWindowRateLimiter(storage)
        self.item = RateLimitItemPerMinute(per_minute)

    def hit(self, endpoint_id: str) -> None:
        """Count one test send to the endpoint; raise if that passes its rate."""
        if not self.limiter.hit(self.item, endpoint_id):
            reset_at, _ = self.limiter.get_window_stats(self.item, endpoint_id)
            raise WebhookTestRateExceededError(
                self.item.amount, max(1, math.ceil(reset_at - time.time()))
            )
