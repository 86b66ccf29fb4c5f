"""An enqueue marks its tenant active on the job's routes, at most once a second per
process and route, and a Redis that cannot answer neither fails the enqueue nor counts
as a mark."""

import logging
import socket

import pytest
import redis

from producers.active_tenants import REMARK_MS, ActiveTenants
from schema.names import active_tenants_key


class Clock:
    def __init__(self) -> None:
        self.now_ms = 1_000_000

    def __call__(self) -> int:
        return self.now_ms


def marks(client: redis.Redis, route: str) -> dict[str, int]:
    return {
        member.decode(): int(score)
        for member, score in client.zrange(active_tenants_key(route), 0, -1, withscores=True)
    }


def test_a_tenant_is_marked_once_per_interval_on_each_route(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    clock = Clock()
    active = ActiveTenants(client, clock_ms=clock)

    active.mark("t1", {"openai", "anthropic"})
    first = clock.now_ms
    clock.now_ms += REMARK_MS - 1
    active.mark("t1", {"openai"})
    active.mark("t2", {"openai"})

    assert marks(client, "openai") == {"t1": first, "t2": clock.now_ms}
    assert marks(client, "anthropic") == {"t1": first}

    clock.now_ms = first + REMARK_MS
    active.mark("t1", {"openai"})

    assert marks(client, "openai")["t1"] == clock.now_ms
    assert marks(client, "anthropic") == {"t1": first}


def test_a_mark_redis_refused_is_tried_again_at_the_next_enqueue(
    redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead_url = f"redis://127.0.0.1:{probe.getsockname()[1]}/6"
    clock = Clock()
    active = ActiveTenants(redis.Redis.from_url(dead_url), clock_ms=clock)

    with caplog.at_level(logging.WARNING, logger="producers.active_tenants"):
        active.mark("t1", {"openai"})

    assert "could not mark tenant active" in caplog.text
    client = redis.Redis.from_url(redis_url)
    active.client = client
    active.mark("t1", {"openai"})
    assert marks(client, "openai") == {"t1": clock.now_ms}
