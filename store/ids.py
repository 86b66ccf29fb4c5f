"""Prefixed random identifiers, so an id says what it names (``job_…``, ``ten_…``)."""

import uuid


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"
