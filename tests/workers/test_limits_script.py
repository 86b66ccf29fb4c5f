"""The one-script admission and settlement on a real Redis: each refusal gives back what
the script took, and a hold is freed once, whoever frees it first."""

from collections.abc import Iterator
from types import SimpleNamespace

import pytest
import redis

from infra.circuits import state_key
from schema.routes import Route, Routes
from tests.workers.test_round_trips import counting
from workers.admission import Deferred, admit
from workers.limits import Limits, Report, Verdict

MODEL = "gpt-4o-mini"


@pytest.fixture
def limits(redis_url: str) -> Iterator[Limits]:
    client = redis.Redis.from_url(redis_url)
    yield Limits(client)
    client.close()


def openai(routes: Routes, **changes: object) -> Route:
    return routes.by_name["openai"].model_copy(update=changes)


def check(limits: Limits, route: Route, tenant: str = "t1", booked: bool = False):  # type: ignore[no-untyped-def]
    return limits.check(route, MODEL, tenant, (1, 1), booked)


def test_a_full_route_refuses_until_a_hold_is_given_back_once(limits, routes, monkeypatch) -> None:
    route = openai(routes, max_in_flight=1)
    first = check(limits, route)
    assert first.hold is not None and first.hold.slot

    assert check(limits, route, "t1").verdict == Verdict.OVER_SHARE
    assert check(limits, route, "t2").verdict == Verdict.ROUTE_FULL
    limits.settle(first.hold, route, Report(failed=False))
    with counting(limits.client, monkeypatch) as trips:
        limits.give_back(first.hold)

    assert trips == []
    assert limits.in_flight("openai") == 0
    assert check(limits, route, "t2").hold is not None


def test_a_route_take_that_must_wait_gives_back_its_slot_and_probe(limits, routes) -> None:
    route = openai(routes, rpm=1, max_in_flight=5)
    assert check(limits, route).hold is not None
    limits.client.hset(state_key("openai"), mapping={"state": "open", "open_until": 0})

    answer = check(limits, route, booked=True)

    assert answer.verdict == Verdict.TAKE_WAIT and answer.wait_ms > 50_000
    assert limits.in_flight("openai") == 1
    assert limits.client.exists(f"{state_key('openai')}:probe") == 0


def test_a_tenant_booked_beyond_the_horizon_books_nothing(limits, routes) -> None:
    route = openai(routes, rpm=6)  # a burst of 6, then one every 10 s; the horizon is 20 s
    answers = [check(limits, route).verdict for _ in range(8)]
    tat = limits.client.get("genq:rl:openai:tenant:t1:rpm")

    assert check(limits, route).verdict == Verdict.BEYOND_HORIZON
    assert answers == [Verdict.ADMITTED] * 6 + [Verdict.BOOKED] * 2
    assert limits.client.get("genq:rl:openai:tenant:t1:rpm") == tat


def test_a_probe_is_given_back_when_its_job_will_not_call(limits, routes) -> None:
    route = openai(routes)
    limits.client.hset(state_key("openai"), mapping={"state": "open", "open_until": 0})
    admitted = check(limits, route)
    assert admitted.hold is not None and admitted.hold.probe
    assert check(limits, route, "t2").verdict == Verdict.OPEN

    limits.give_back(admitted.hold)

    assert check(limits, route, "t2").hold.probe  # type: ignore[union-attr]


def test_admission_defers_a_job_that_finds_the_route_full_for_its_inline_wait(
    limits, routes
) -> None:
    route = openai(routes, max_in_flight=1)
    assert check(limits, route, "t2").hold is not None
    runtime = SimpleNamespace(limits=limits)
    job = SimpleNamespace(tenant_id="t1")
    chat = {"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 16}

    verdict = admit(runtime, job, route, MODEL, chat, booked=False)  # type: ignore[arg-type]

    assert isinstance(verdict, Deferred) and verdict.booked


def test_a_settle_reads_the_version_key_it_is_given_making_one_if_missing(limits, routes) -> None:
    route = openai(routes)
    hold = check(limits, route).hold
    again = check(limits, route).hold
    assert hold is not None and again is not None

    made = limits.settle(hold, route, Report(failed=False), "genq:test:version")
    read = limits.settle(again, route, Report(failed=False), "genq:test:version")

    assert made is not None and len(made) == 32
    assert read == made == limits.client.get("genq:test:version")
    assert limits.settle(hold, route, Report(failed=False)) is None
