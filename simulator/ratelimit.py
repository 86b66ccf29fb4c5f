"""Usage counted per minute, the unit of RPM and TPM rate limits."""

import time
from collections.abc import Callable
from dataclasses import dataclass, field

WINDOW_SECONDS = 60.0


class MinuteWindow:
    """Usage within a one-minute window that opens at the first use and then resets."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._opened = 0.0
        self._used = 0

    @property
    def used(self) -> int:
        """Usage counted in the current window."""
        self._expire()
        return self._used

    def add(self, amount: int) -> None:
        """Count amount against the current window, opening one if none is."""
        self._expire()
        if not self._used:
            self._opened = self._clock()
        self._used += amount

    def remaining(self, limit: int) -> int:
        """What is left of limit in the current window."""
        return max(limit - self.used, 0)

    def reset_after(self) -> float:
        """Seconds until usage drops back to zero."""
        if not self.used:
            return 0.0
        return self._opened + WINDOW_SECONDS - self._clock()

    def clear(self) -> None:
        """Forget all usage."""
        self._used = 0

    def _expire(self) -> None:
        if self._used and self._clock() - self._opened >= WINDOW_SECONDS:
            self._used = 0


@dataclass
class RateLimits:
    """Request and token usage, the two dimensions providers limit."""

    requests: MinuteWindow = field(default_factory=MinuteWindow)
    tokens: MinuteWindow = field(default_factory=MinuteWindow)

    def clear(self) -> None:
        """Forget all usage."""
        self.requests.clear()
        self.tokens.clear()
