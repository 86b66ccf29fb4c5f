"""Delay before a retry: exponential backoff with full jitter, capped, honouring Retry-After.

Full jitter (AWS Architecture Blog, "Exponential Backoff and Jitter") spreads retries
of many jobs that failed together, so they do not hit the provider again in lockstep.
"""

import random

BASE_S = 1.0
CAP_S = 60.0
RETRY_AFTER_CAP_S = 300.0


def retry_delay_s(attempt: int, retry_after_s: float | None = None) -> float:
    """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
    delay = random.uniform(0, min(CAP_S, BASE_S * 2 ** (attempt - 1)))
    if retry_after_s is not None:
        delay = max(delay, min(retry_after_s, RETRY_AFTER_CAP_S))
    return delay
