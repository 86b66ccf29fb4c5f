"""Hostile input for the API: the values that once broke it, and how a refusal must look."""

import json
from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient
from httpx import Response
from sqlalchemy import Engine, func, select

from schema.names import BROKER_NAMESPACE
from schema.tables import Base

SURROGATE = "\ud83d"  # half of an emoji: valid in JSON's \u escapes, not in UTF-8
NUL = "\x00"
BAD_TEXT = [pytest.param(SURROGATE, id="surrogate"), pytest.param(NUL, id="nul")]
# Dates a parser accepts but that overflow once shifted to UTC or moved by a period.
FAR_DATES = [
    pytest.param("0001-01-01T00:00:00+14:00", id="year-1"),
    pytest.param("9999-12-31T23:59:59-14:00", id="year-9999"),
]


def post(client: TestClient, url: str, body: Any, headers: dict[str, str]) -> Response:
    """POST ``body`` as Python's json.dumps writes it: surrogates as \\u escapes, NaN bare."""
    return send(client, "POST", url, json.dumps(body), headers)


def send(client: TestClient, method: str, url: str, text: str, headers: dict[str, str]) -> Response:
    return client.request(
        method, url, content=text.encode(), headers={**headers, "Content-Type": "application/json"}
    )


def nested(depth: int) -> Any:
    """A value ``depth`` lists deep: a few hundred levels fit in 2 KB."""
    value: Any = "x"
    for _ in range(depth):
        value = [value]
    return value


def refused(response: Response, status: int, field: str, *, prefix: bool = False) -> dict[str, Any]:
    """Assert the standard error body, naming ``field`` (or a field under it, with
    ``prefix``); return the error."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    error = body["error"]
    assert {"type", "message", "errors"} <= set(error)
    fields = [e["field"] for e in error["errors"]]
    assert any(f == field or (prefix and f.startswith(field)) for f in fields), fields
    assert all(e["message"] for e in error["errors"])
    return error


class Ledger:
    """Everything the API could have written or sent: every table's row count and every
    message on the broker. Taken before and after a hostile request, it must not change."""

    def __init__(self, engine: Engine, redis_url: str) -> None:
        self.engine = engine
        self.redis = redis.Redis.from_url(redis_url)

    def snapshot(self) -> dict[str, int]:
        with self.engine.connect() as connection:
            rows = {
                table.name: connection.scalar(select(func.count()).select_from(table)) or 0
                for table in Base.metadata.sorted_tables
            }
        for key in self.redis.scan_iter(f"{BROKER_NAMESPACE}:*"):
            kind = self.redis.type(key).decode()
            size = {"list": self.redis.llen, "hash": self.redis.hlen, "zset": self.redis.zcard}
            if kind in size:
                rows[f"redis:{key.decode()}"] = size[kind](key)
        return rows
