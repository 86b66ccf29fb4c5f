"""Scrubbing secrets out of text before it is stored or shown: provider keys, tenant and
admin keys, webhook secrets, bearer tokens and passwords in URLs."""

import re
from typing import Any

REDACTED = "[redacted]"

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


def scrub(text: str) -> str:
    """``text`` with every secret-looking token replaced by ``[redacted]``."""
    for pattern in SECRET_PATTERNS:
        if pattern.groups >= 2:
            text = pattern.sub(lambda m: f"{m.group(1)}{m.group(2)}{REDACTED}", text)
        elif pattern.groups == 1:
            text = pattern.sub(lambda m: f"{m.group(1)} {REDACTED}", text)
        else:
            text = pattern.sub(REDACTED, text)
    return text


def scrub_value(value: Any) -> Any:
    """Scrub every string inside a JSON-like value."""
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, dict):
        return {k: scrub_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [scrub_value(v) for v in value]
    return value
