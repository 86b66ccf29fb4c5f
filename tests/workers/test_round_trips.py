"""Redis round trips one chat job costs the worker: the circuit, the limits and the slot are
one script call before the provider call and one after it, whether or not the route has
limits (a route without limits touches none of the limiter's keys). The script after the
call also reads the version of the tenant's cached webhook endpoints, which the outcome's
commit uses in place of a round trip of its own."""

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import redis
from redis.client import Pipeline

from tests.helpers import override
from tests.producers.test_api import CHAT
from workers import execution

pytestmark = pytest.mark.parametrize("engine", ["postgresql"], indirect=True)


@contextmanager
def counting(client: redis.Redis, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Each round trip made on ``client`` (a command, or a pipeline's whole batch)."""
    trips: list[str] = []
    command = client.execute_command
    pipeline_execute = Pipeline.execute

    def one(*args, **options):  # type: ignore[no-untyped-def]
        trips.append(" ".join(str(arg) for arg in args))
        return command(*args, **options)

    def batch(pipe: Pipeline, raise_on_error: bool = True):  # type: ignore[no-untyped-def]
        if pipe.connection_pool is client.connection_pool:
            trips.append(f"pipeline of {len(pipe.command_stack)}")
        return pipeline_execute(pipe, raise_on_error)

    with monkeypatch.context() as patch:
        patch.setattr(client, "execute_command", one)
        patch.setattr(Pipeline, "execute", batch)
        yield trips


def one_job(client, auth, runtime, monkeypatch) -> list[str]:  # type: ignore[no-untyped-def]
    """The round trips of a job run after a first one, which loads the scripts."""
    first, job_id = (client.post("/v1/jobs", json=CHAT, headers=auth).json()["id"] for _ in "ab")
    execution.run_job(runtime, first)
    with counting(runtime.redis_client, monkeypatch) as trips:
        execution.run_job(runtime, job_id)
    assert client.get(f"/v1/jobs/{job_id}", headers=auth).json()["status"] == "succeeded"
    return [" ".join(trip.split()[:4]) for trip in trips]


def test_a_job_on_a_route_without_limits(client, auth, runtime, monkeypatch) -> None:
    trips = one_job(client, auth, runtime, monkeypatch)

    admit, settle = runtime.limits._admit.sha, runtime.limits._settle.sha
    assert trips == [
        f"EVALSHA {admit} 7 genq:route:openai:paused",
        f"EVALSHA {settle} 7 genq:cb:openai",
    ]
    assert runtime.redis_client.keys("genq:rl:*") == [b"genq:rl:openai:tenants"]  # by the API


def test_a_job_on_a_route_with_limits(client, auth, routes, runtime, monkeypatch) -> None:
    override(routes, "openai", rpm=600, tpm=100_000, max_in_flight=4)

    trips = one_job(client, auth, runtime, monkeypatch)

    admit, settle = runtime.limits._admit.sha, runtime.limits._settle.sha
    assert trips == [
        f"EVALSHA {admit} 11 genq:route:openai:paused",
        f"EVALSHA {settle} 10 genq:cb:openai",
    ]
    assert runtime.limits.in_flight("openai") == 0
