"""Counters of what the simulator was asked, so tests can prove a provider was (not) called."""

from collections import Counter
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Stats:
    """Calls and errors per endpoint, plus tokens used by successful calls."""

    calls: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    prompt_tokens: int = 0
    completion_tokens: int = 0

    def record_usage(self, prompt_tokens: int, completion_tokens: int) -> None:
        """Add the usage of one successful call."""
        self.prompt_tokens += prompt_tokens
        self.completion_tokens += completion_tokens

    def snapshot(self) -> dict[str, Any]:
        """The counters as JSON-ready data."""
        return {
            "calls": dict(self.calls),
            "errors": dict(self.errors),
            "tokens": {
                "prompt_tokens": self.prompt_tokens,
                "completion_tokens": self.completion_tokens,
                "total_tokens": self.prompt_tokens + self.completion_tokens,
            },
        }

    def clear(self) -> None:
        """Zero every counter."""
        self.calls.clear()
        self.errors.clear()
        self.prompt_tokens = self.completion_tokens = 0
