"""Deterministic generated text: the same prompt always gets the same reply."""

import random
from collections.abc import Mapping, Sequence
from typing import Any

from simulator.tokens import count_text

MIN_TOKENS = 16
MAX_TOKENS = 40
SNIPPET_WORDS = 6
SNIPPET_CHARS = 40
FILLER = (
    "the", "queue", "worker", "job", "retries", "webhook", "result", "is", "ready",
    "and", "signed", "simulated", "provider", "answers", "quickly", "with", "tokens",
    "deterministic", "output", "for", "testing", "every", "request", "gets", "a", "reply",
)  # fmt: skip


def reply_text(prompt: str, choice: int = 0) -> str:
    """A reply of 16 to 40 tokens that quotes the start of prompt.

    choice seeds alternative replies to the same prompt, as when n > 1.
    """
    rng = random.Random(f"{choice}:{prompt}")
    target = rng.randint(MIN_TOKENS, MAX_TOKENS)
    snippet = " ".join(prompt.split()[:SNIPPET_WORDS])[:SNIPPET_CHARS] or "nothing"
    words = [f"Simulated reply to: {snippet}..."]
    while count_text(" ".join(words)) < target - 1:
        words.append(rng.choice(FILLER))
    return " ".join(words) + "."


def last_user_text(messages: Sequence[Mapping[str, Any]]) -> str:
    """The text of the last user message, which the reply answers.

    Messages are validated chat messages, OpenAI's or Anthropic's: their content
    is a string or a list of parts, the text parts `{"type": "text", "text": ...}`.
    """
    for message in reversed(messages):
        if message["role"] == "user":
            content = message["content"]
            if isinstance(content, str):
                return content
            return " ".join(part["text"] for part in content if part["type"] == "text")
    return ""
