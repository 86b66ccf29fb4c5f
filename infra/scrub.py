"""Scrubbing secrets out of text before it is stored or shown: provider keys, tenant and
admin keys, webhook secrets, bearer tokens and passwords in URLs.

Two nets. By shape: patterns for the key formats genq and its providers use. By value:
the exact secrets this process knows, registered once with ``register_secret`` (at
start-up, and when a key is checked or a webhook secret is made or loaded), so a provider
key of any format is caught too. ``scrub`` uses both; ``scrub_known`` only the values,
for text such as a model's output that the shapes would mangle.
"""

import re
import threading
from collections.abc import Callable
from typing import Any

REDACTED = "[redacted]"
# Shorter values are never registered: redacting them would hit ordinary words.
MIN_SECRET_LENGTH = 8
# Up to this many values each is searched for; past it, only the values whose first
# MIN_SECRET_LENGTH characters occur in the text are.
DIRECT_SEARCH_MAX = 64

SECRET_PATTERNS = [
    re.compile(r"\bsk-(?:ant-|proj-)?[A-Za-z0-9_\-*]{8,}"),
    re.compile(r"\bgq_(?:admin_)?[A-Za-z0-9_\-]{16,}"),
    re.compile(r"\bwhsec_[A-Za-z0-9+/=]{16,}"),
    re.compile(r"\br8_[A-Za-z0-9]{16,}"),
    re.compile(r"(?i)\b(bearer|token)\s+[A-Za-z0-9._~+/\-]{8,}=*"),
    re.compile(r"(?i)(x-api-key|api[_-]?key|authorization)([\"']?\s*[:=]\s*[\"']?)[^\s\"',}]{6,}"),
    re.compile(r"(?<=://)[^/\s:@]+:[^/\s@]+(?=@)"),
    re.compile(r"(?i)\bbasic\s+[A-Za-z0-9+/]{4,}=*"),
    re.compile(
        r"(?i)(?<=[?&])(token|secret|sig|signature|key|api_key|access_token|password)(=)[^&\s\"']+"
    ),
]


class _Known:
    """The registered values, longest first, and by their first characters."""

    def __init__(self, values: frozenset[str]) -> None:
        self.values = values
        self.longest_first = sorted(values, key=len, reverse=True)
        self.by_head: dict[str, list[str]] = {}
        for value in self.longest_first:
            self.by_head.setdefault(value[:MIN_SECRET_LENGTH], []).append(value)


_known = _Known(frozenset())
_registering = threading.Lock()


def register_secret(*values: str | None) -> None:
    """Redact these exact values from now on, in this process. None, blank and short
    values (under ``MIN_SECRET_LENGTH`` characters) are ignored."""
    global _known
    fresh = {v.strip() for v in values if v and len(v.strip()) >= MIN_SECRET_LENGTH}
    if fresh <= _known.values:
        return
    with _registering:
        _known = _Known(_known.values | fresh)


def scrub_known(text: str) -> str:
    """``text`` with every registered secret value replaced by ``[redacted]``."""
    known = _known
    if not known.values or len(text) < MIN_SECRET_LENGTH:
        return text
    if len(known.values) <= DIRECT_SEARCH_MAX:
        candidates = known.longest_first
    else:
        heads = {text[i : i + MIN_SECRET_LENGTH] for i in range(len(text) - MIN_SECRET_LENGTH + 1)}
        found = {v for head in heads & known.by_head.keys() for v in known.by_head[head]}
        candidates = sorted(found, key=len, reverse=True)
    for value in candidates:
        if value in text:
            text = text.replace(value, REDACTED)
    return text


def scrub(text: str) -> str:
    """``text`` with every registered secret and every secret-looking token replaced by
    ``[redacted]``."""
    text = scrub_known(text)
    for pattern in SECRET_PATTERNS:
        if pattern.groups >= 2:
            text = pattern.sub(lambda m: f"{m.group(1)}{m.group(2)}{REDACTED}", text)
        elif pattern.groups == 1:
            text = pattern.sub(lambda m: f"{m.group(1)} {REDACTED}", text)
        else:
            text = pattern.sub(REDACTED, text)
    return text


def scrub_value(value: Any, scrubber: Callable[[str], str] = scrub) -> Any:
    """Scrub every string inside a JSON-like value with ``scrubber``."""
    if isinstance(value, str):
        return scrubber(value)
    if isinstance(value, dict):
        return {k: scrub_value(v, scrubber) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [scrub_value(v, scrubber) for v in value]
    return value
