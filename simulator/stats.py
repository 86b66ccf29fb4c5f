"""Counters of what the simulator was asked, so tests can prove a provider was (not) called."""

from collections import Counter
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Stats:
    """Per endpoint: calls, error answers, 429s among them and injected faults; plus tokens
    and the calls being answered now (and the most ever at once).

    Every request counts as a call, faulted or not. Injected faults are not
    errors; rate-limited answers are.
    """

    calls: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    rate_limited: Counter[str] = field(default_factory=Counter)
    faults: Counter[str] = field(default_factory=Counter)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    in_flight: int = 0
    peak_in_flight: int = 0

    def call_started(self) -> None:
        self.in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)

    def call_ended(self) -> None:
        self.in_flight -= 1

    def record_usage(self, prompt_tokens: int, completion_tokens: int) -> None:
        """Add the usage of one successful call."""
        self.prompt_tokens += prompt_tokens
        self.completion_tokens += completion_tokens

    def snapshot(self) -> dict[str, Any]:
        """The counters as JSON-ready data."""
        return {
            "calls": dict(self.calls),
            "errors": dict(self.errors),
            "rate_limited": dict(self.rate_limited),
            "faults": dict(self.faults),
            "in_flight": self.in_flight,
            "peak_in_flight": self.peak_in_flight,
            "tokens": {
                "prompt_tokens": self.prompt_tokens,
                "completion_tokens": self.completion_tokens,
                "total_tokens": self.prompt_tokens + self.completion_tokens,
            },
        }

    def clear(self) -> None:
        """Zero every counter."""
        for counter in (self.calls, self.errors, self.rate_limited, self.faults):
            counter.clear()
        self.prompt_tokens = self.completion_tokens = 0
        self.peak_in_flight = self.in_flight
