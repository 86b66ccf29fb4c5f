"""Per-minute rate limits as token buckets, the way OpenAI and Anthropic enforce them.

A limit of N per minute is a bucket holding at most N, refilled continuously at
N/60 per second rather than reset at fixed intervals. A request is admitted
only if what it asks for is in the bucket now.
"""

import math
from collections.abc import Mapping
from dataclasses import dataclass

SECONDS_PER_MINUTE = 60.0
ROUNDING_SLACK = 1e-9
"""A shortfall this small is float rounding in the refill, not a missing unit."""


class TokenBucket:
    """One per-minute limit of one API key.

    Usage may be reconciled after the fact (estimated tokens against actual
    ones), so the level can drop below zero; the bucket is then in debt.
    """

    def __init__(self, limit: int, now: float) -> None:
        self.limit = limit
        self.level = float(limit)
        self.updated = now

    @property
    def rate(self) -> float:
        """Refill per second."""
        return self.limit / SECONDS_PER_MINUTE

    @property
    def remaining(self) -> int:
        """Whole units available now."""
        return max(math.floor(self.level), 0)

    @property
    def used(self) -> int:
        """Units missing from a full bucket."""
        return self.limit - self.remaining

    def refill(self, now: float, limit: int) -> None:
        """Add what accrued since the last refill, up to limit, which may have changed."""
        elapsed = max(now - self.updated, 0.0)
        self.limit = limit
        self.level = min(self.level + elapsed * self.rate, limit)
        self.updated = max(now, self.updated)

    def wait(self, amount: int) -> float:
        """Seconds until amount is available: 0 if it is now, infinity if it never can be."""
        if amount > self.limit:
            return math.inf
        shortfall = amount - self.level
        return shortfall / self.rate if shortfall > ROUNDING_SLACK else 0.0

    def take(self, amount: int) -> None:
        """Use amount; a negative amount gives back what an estimate overcounted."""
        self.level = min(self.level - amount, self.limit)

    def reset_after(self) -> float:
        """Seconds until the bucket is full again."""
        return max(self.limit - self.level, 0.0) / self.rate


@dataclass(frozen=True)
class Quota:
    """One API key's buckets in one protocol family, refilled to the instant `now`."""

    now: float
    buckets: Mapping[str, TokenBucket]


class RateLimits:
    """Token buckets keyed by protocol family, API key and dimension ("requests", "tokens"...)."""

    def __init__(self) -> None:
        self._buckets: dict[tuple[str, str, str], TokenBucket] = {}

    def quota(self, family: str, key: str, limits: Mapping[str, int], now: float) -> Quota:
        """The key's buckets for each dimension in limits, created full and refilled to now."""
        buckets = {}
        for dimension, limit in limits.items():
            bucket = self._buckets.setdefault((family, key, dimension), TokenBucket(limit, now))
            bucket.refill(now, limit)
            buckets[dimension] = bucket
        return Quota(now, buckets)

    def clear(self) -> None:
        """Forget all usage."""
        self._buckets.clear()
