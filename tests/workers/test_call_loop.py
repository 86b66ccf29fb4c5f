"""Provider calls on the worker's event loop: more calls in flight than threads, no more
than the process's places, the policy on every failure, what each job held given back, and
a loop that stops with calls in flight leaves their jobs to be taken over."""

import asyncio
import threading
from collections import Counter
from collections.abc import Callable, Iterator

import dramatiq
import httpx
import pytest
from sqlalchemy import Engine, select

from infra import tls
from schema.routes import Routes
from schema.settings import Settings
from schema.tables import Job, JobAttempt
from tests.conftest import SimControl
from tests.helpers import override
from tests.waiting import eventually
from tests.workers.test_limits import submit
from workers.actors import declare_actors
from workers.call_loop import BACKLOG_PER_FINISHER, LAG_LIMIT_S, CallLoop
from workers.providers.kept_connections import KeptConnections
from workers.runtime import Runtime, build_runtime

on_postgresql = pytest.mark.parametrize("engine", ["postgresql"], indirect=True)

THREADS = 2


@pytest.fixture
def places() -> int:
    return 64


@pytest.fixture
def loop_runtime(
    settings: Settings, engine: Engine, routes: Routes, places: int
) -> Iterator[Runtime]:
    on_loop = settings.model_copy(update={"worker_in_flight": places, "worker_threads": THREADS})
    runtime = build_runtime(on_loop, settings_broker(on_loop), engine=engine, routes=routes)
    declare_actors(runtime)
    runtime.start()
    worker = dramatiq.Worker(runtime.broker, worker_timeout=50, worker_threads=THREADS)
    worker.start()
    yield runtime
    worker.stop()
    runtime.close()
    runtime.broker.close()


def settings_broker(settings: Settings) -> dramatiq.Broker:
    from infra.brokers import make_broker

    return make_broker(settings, consumer=True)


def ended(engine: Engine, ids: list[str]) -> dict[str, str]:
    def read() -> dict[str, str]:
        with engine.connect() as connection:
            rows = connection.execute(select(Job.id, Job.status).where(Job.id.in_(ids))).all()
        return dict(rows)  # type: ignore[arg-type]

    return eventually(
        read,
        lambda jobs: all(s in ("succeeded", "failed", "dead_lettered") for s in jobs.values()),
        timeout_s=60,
    )


def attempts(engine: Engine, ids: list[str]) -> Counter[str]:
    with engine.connect() as connection:
        statuses = connection.execute(
            select(JobAttempt.status).where(JobAttempt.job_id.in_(ids))
        ).scalars()
        return Counter(statuses)


@on_postgresql
def test_a_worker_keeps_more_calls_in_flight_than_it_has_threads(
    client, auth, engine, loop_runtime, sim_control: SimControl
) -> None:
    sim_control.config(latency_ms=2000)

    ids = submit(client, auth, 40)

    assert set(ended(engine, ids).values()) == {"succeeded"}
    assert attempts(engine, ids) == {"succeeded": 40}
    stats = sim_control.http.get("/_sim/stats").json()
    assert stats["calls"]["chat.completions"] == 40
    assert stats["peak_in_flight"] > THREADS
    assert loop_runtime.calls is not None and loop_runtime.calls.taken == 0


@on_postgresql
@pytest.mark.parametrize("places", [3])
def test_the_places_bound_the_calls_in_flight(
    client, auth, engine, loop_runtime, sim_control: SimControl, places: int
) -> None:
    sim_control.config(latency_ms=200)

    ids = submit(client, auth, 12)

    assert set(ended(engine, ids).values()) == {"succeeded"}
    assert sim_control.http.get("/_sim/stats").json()["peak_in_flight"] <= places


@on_postgresql
def test_failures_on_the_loop_follow_the_retry_policy(
    client, auth, engine, loop_runtime, sim_control: SimControl, monkeypatch
) -> None:
    monkeypatch.setattr("workers.execution.policy.retry_delay_s", lambda attempt, after: 0.05)
    # Four failures in a row: one short of the five that open the route's circuit.
    sim_control.faults(
        {"endpoint": "chat.completions", "kind": "status", "code": 503, "count": 2},
        {"endpoint": "chat.completions", "kind": "reset", "count": 2},
    )

    ids = submit(client, auth, 4)

    assert set(ended(engine, ids).values()) == {"succeeded"}
    assert attempts(engine, ids) == {"succeeded": 4, "failed": 4}


@on_postgresql
def test_a_refused_call_on_the_loop_fails_the_job_at_once(
    client, auth, engine, loop_runtime, sim_control: SimControl
) -> None:
    sim_control.faults({"endpoint": "chat.completions", "kind": "status", "code": 400})

    ids = submit(client, auth, 2)

    assert set(ended(engine, ids).values()) == {"failed"}
    assert attempts(engine, ids) == {"failed": 2}


@on_postgresql
def test_a_limited_route_gets_its_slots_back_from_the_loop(
    client, auth, engine, routes, loop_runtime, sim_control: SimControl
) -> None:
    sim_control.config(latency_ms=100)
    override(routes, "openai", max_in_flight=2)

    ids = submit(client, auth, 10)

    assert set(ended(engine, ids).values()) == {"succeeded"}
    assert sim_control.http.get("/_sim/stats").json()["peak_in_flight"] <= 2
    assert eventually(lambda: loop_runtime.limits.in_flight("openai"), lambda n: n == 0) == 0


@on_postgresql
def test_a_loop_closed_mid_call_leaves_the_job_leased_for_a_takeover(
    client, auth, engine, settings, routes, sim_control: SimControl
) -> None:
    sim_control.faults({"endpoint": "chat.completions", "kind": "timeout", "delay_s": 30})
    on_loop = settings.model_copy(update={"worker_in_flight": 4, "worker_threads": THREADS})
    runtime = build_runtime(on_loop, settings_broker(on_loop), engine=engine, routes=routes)
    declare_actors(runtime)
    runtime.start()
    worker = dramatiq.Worker(runtime.broker, worker_timeout=50, worker_threads=THREADS)
    worker.start()
    try:
        (job_id,) = submit(client, auth, 1)
        eventually(lambda: sim_control.http.get("/_sim/stats").json()["in_flight"], bool)
    finally:
        worker.stop()
        assert runtime.calls is not None
        runtime.calls.close(drain_s=0)
        runtime.calls = None
        runtime.close()
        runtime.broker.close()

    with engine.connect() as connection:
        job = connection.execute(select(Job.status, Job.lease_expires_at)).one()
    assert job.status == "running" and job.lease_expires_at is not None
    assert attempts(engine, [job_id]) == {"started": 1}


def test_a_call_cut_off_by_close_gives_its_place_back() -> None:
    loop = CallLoop(places=2, finishers=1)
    loop.start()
    finished: list[object] = []

    async def hangs(_client: httpx.AsyncClient) -> None:
        await asyncio.sleep(3600)

    loop.take_place()
    loop.hand_over(_route(), hangs, finished.append)
    loop.close(drain_s=0.05)

    assert loop.taken == 0
    assert finished == []


def test_a_finish_that_breaks_still_gives_the_place_back() -> None:
    loop = CallLoop(places=1, finishers=1)
    loop.start()
    done = threading.Event()

    async def answers(_client: httpx.AsyncClient) -> str:
        return "answer"

    def breaks(answer: object) -> None:
        done.set()
        raise RuntimeError(f"cannot store {answer}")

    loop.take_place()
    loop.hand_over(_route(), answers, breaks)
    eventually(lambda: loop.taken, lambda taken: taken == 0)
    loop.close(drain_s=1)

    assert done.is_set()


def test_a_loop_that_runs_late_holds_new_calls_back_until_it_keeps_time() -> None:
    loop = CallLoop(places=4, finishers=1)
    loop.start()
    stuck = threading.Event()
    loop._loop.call_soon_threadsafe(stuck.wait)  # the loop's thread busy, as on a short CPU
    eventually(lambda: loop.late_s, lambda late_s: late_s > LAG_LIMIT_S)

    assert _taken_after(loop, stuck.set) == ["released", "taken"]


def test_a_loop_whose_finishers_fall_behind_holds_new_calls_back_until_they_catch_up() -> None:
    loop = CallLoop(places=8, finishers=1)
    loop.start()
    caught_up = threading.Event()

    async def answers(_client: httpx.AsyncClient) -> str:
        return "answer"

    behind = BACKLOG_PER_FINISHER + 1
    for _ in range(behind):
        loop.take_place()
        loop.hand_over(_route(), answers, lambda _answer: caught_up.wait(10))
    eventually(lambda: loop.finishing, lambda finishing: finishing == behind)

    assert _taken_after(loop, caught_up.set) == ["released", "taken"]
    assert loop.finishing == 0


def _taken_after(loop: CallLoop, release: Callable[[], object]) -> list[str]:
    """Take a place on another thread, then ``release`` what holds it back; the order the
    two came in. The loop is closed after."""
    order: list[str] = []

    def take() -> None:
        loop.take_place()
        order.append("taken")

    taker = threading.Thread(target=take)
    taker.start()
    order.append("released")
    release()
    taker.join(10)
    loop.give_back()
    loop.close(drain_s=1)
    return order


def _route():  # type: ignore[no-untyped-def]
    from tests.conftest import sim_routes

    return sim_routes("http://127.0.0.1:9").by_name["openai"]


def test_a_routes_calls_share_one_client_keeping_a_connection_for_every_place() -> None:
    places = 5
    loop = CallLoop(places, finishers=2)
    loop.start()
    clients: list[httpx.AsyncClient] = []
    finished = threading.Semaphore(0)

    async def call(client: httpx.AsyncClient) -> None:
        clients.append(client)

    for _ in range(places * 2):
        loop.take_place()
        loop.hand_over(_route(), call, lambda _answer: finished.release())
    for _ in range(places * 2):
        assert finished.acquire(timeout=10)
    pool = clients[0]._transport._pool  # type: ignore[attr-defined]
    loop.close(drain_s=10)

    assert len(clients) == places * 2 and len(set(map(id, clients))) == 1
    assert isinstance(pool, KeptConnections) and pool._max_idle == places
    assert pool._ssl_context is tls.client_context(), "the routes' clients share one TLS context"
