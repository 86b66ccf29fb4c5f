"""Fixtures for the infrastructure tests."""

import uuid
from collections.abc import Callable, Iterator

import pytest
import redis


@pytest.fixture
def client_without(redis_url: str) -> Iterator[Callable[[str], redis.Redis]]:
    """Make clients whose Redis user may do everything but the given commands."""
    admin = redis.Redis.from_url(redis_url)
    names: list[str] = []

    def make(*commands: str) -> redis.Redis:
        names.append(f"genq-test-{uuid.uuid4().hex}")
        admin.acl_setuser(
            names[-1], enabled=True, nopass=True, keys=["*"], channels=["*"],
            commands=["+@all", *(f"-{command}" for command in commands)],
        )  # fmt: skip
        return redis.Redis.from_url(redis_url, username=names[-1])

    yield make
    for name in names:
        admin.acl_deluser(name)
