"""A token-count heuristic standing in for a real tokenizer.

Text costs one token per started group of four characters, roughly what
OpenAI's tokenizers average on English. Chat messages add OpenAI's framing:
three tokens per message, the role, the content, one more plus the name if
there is one, and three priming the reply. Non-text content parts (images,
audio, files) cost a flat 85 tokens, OpenAI's price of a low-detail image.
"""

from collections.abc import Iterable, Mapping
from typing import Any

CHARS_PER_TOKEN = 4
MESSAGE_OVERHEAD = 3
NAME_OVERHEAD = 1
REPLY_PRIMING = 3
NON_TEXT_PART_TOKENS = 85


def count_text(text: str) -> int:
    """Tokens in text: zero only when it is empty."""
    return -(-len(text) // CHARS_PER_TOKEN)


def truncate_text(text: str, tokens: int) -> str:
    """The longest prefix of text that fits in tokens."""
    return text[: tokens * CHARS_PER_TOKEN]


def count_content(content: str | list[Mapping[str, Any]] | None) -> int:
    """Tokens in a chat message's content: a string, a list of parts, or None."""
    if content is None:
        return 0
    if isinstance(content, str):
        return count_text(content)
    return sum(
        count_text(part["text"]) if part["type"] == "text" else NON_TEXT_PART_TOKENS
        for part in content
    )


def count_messages(messages: Iterable[Mapping[str, Any]]) -> int:
    """Prompt tokens of a validated list of OpenAI chat messages."""
    total = REPLY_PRIMING
    for message in messages:
        total += MESSAGE_OVERHEAD + count_text(message["role"])
        total += count_content(message.get("content"))
        if name := message.get("name"):
            total += NAME_OVERHEAD + count_text(str(name))
    return total
