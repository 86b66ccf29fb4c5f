"""Budgets: 402 when spent, and a limit that holds when a tenant fires requests in parallel,
also while spend waits in the ledger to be folded."""

from concurrent.futures import ThreadPoolExecutor

import dramatiq
import httpx
from sqlalchemy import select

from infra.db import make_sessions
from producers.api import create_app
from schema.pricing import max_cost_micros
from schema.routes import Protocol
from schema.tables import BudgetPeriod, Job
from simulator.server import ThreadedServer
from store import budget_ledger, budgets
from tests.producers.test_api import CHAT, counts
from tests.waiting import eventually
from tests.workers.test_worker import job_of

PARALLEL = 40
FITS = 8


def estimate(routes) -> int:  # type: ignore[no-untyped-def]
    spec = routes.by_name["openai"].models["gpt-4o-mini"]
    return max_cost_micros(Protocol.OPENAI_CHAT, spec, CHAT["input"])


def period(engine, tenant_id: str) -> BudgetPeriod:  # type: ignore[no-untyped-def]
    """The tenant's budget row once the ledger is folded; an empty one if nothing was ever
    reserved."""
    sessions = make_sessions(engine)
    budget_ledger.fold(sessions)
    with sessions() as session:
        found = session.scalars(
            select(BudgetPeriod).where(BudgetPeriod.tenant_id == tenant_id)
        ).one_or_none()
    return found or BudgetPeriod(reserved_micros=0, spent_micros=0)


def test_parallel_enqueues_never_pass_the_budget(
    producer, engine, routes, tenant, auth, worker, runtime
) -> None:
    limit = estimate(routes) * FITS + estimate(routes) // 2
    budgets.set_budget(engine, tenant.tenant_id, limit, "month")

    with ThreadedServer(create_app(producer)) as server, httpx.Client(headers=auth) as http:

        def enqueue(_: int) -> httpx.Response:
            return http.post(f"{server.url}/v1/jobs", json=CHAT, timeout=30)

        with ThreadPoolExecutor(PARALLEL) as pool:
            answers = list(pool.map(enqueue, range(PARALLEL)))

    statuses = sorted(a.status_code for a in answers)
    assert statuses == [202] * FITS + [402] * (PARALLEL - FITS)
    refused = next(a for a in answers if a.status_code == 402).json()["error"]
    assert refused["type"] == "budget_exceeded"
    assert "resets at" in refused["message"]
    held = period(engine, tenant.tenant_id)
    assert held.reserved_micros + held.spent_micros <= limit
    assert counts(engine) == (FITS, FITS)

    def settled() -> BudgetPeriod:
        return period(engine, tenant.tenant_id)

    done = eventually(settled, lambda p: p.reserved_micros == 0, timeout_s=30)
    with runtime.sessions() as session:
        costs = session.scalars(select(Job.cost_micros)).all()
    assert done.spent_micros == sum(costs) > 0
    assert done.spent_micros <= limit


def test_pending_spend_counts_before_it_is_folded(producer, engine, routes, tenant, auth) -> None:
    limit = estimate(routes) * FITS + estimate(routes) // 2
    budgets.set_budget(engine, tenant.tenant_id, limit, "month")
    sessions = make_sessions(engine)
    with sessions.begin() as session:  # a canceled job's reservation, given back unfolded
        start = budgets.reserve(session, tenant.tenant_id, estimate(routes))
    with sessions.begin() as session:
        budgets.settle(session, tenant.tenant_id, start, released_micros=estimate(routes))
        lost = estimate(routes) * 3  # lost attempts' estimates, owed beyond any reservation
        budgets.settle(session, tenant.tenant_id, start, spent_micros=lost)

    with ThreadedServer(create_app(producer)) as server, httpx.Client(headers=auth) as http:

        def enqueue(_: int) -> int:
            return http.post(f"{server.url}/v1/jobs", json=CHAT, timeout=30).status_code

        with ThreadPoolExecutor(PARALLEL) as pool:
            statuses = sorted(pool.map(enqueue, range(PARALLEL)))

    fits = FITS - 4  # the give-back waits for the fold; the owed spend does not
    assert statuses == [202] * fits + [402] * (PARALLEL - fits)
    held = period(engine, tenant.tenant_id)
    assert held.spent_micros == lost
    assert held.spent_micros + held.reserved_micros == lost + fits * estimate(routes) <= limit


def test_a_spent_budget_refuses_with_402_and_stores_nothing(client, auth, engine, tenant, routes):
    budgets.set_budget(engine, tenant.tenant_id, estimate(routes) - 1, "day")

    response = client.post("/v1/jobs", json=CHAT, headers=auth)

    assert response.status_code == 402
    body = response.json()["error"]
    assert body["needed_usd"] > body["budget_usd"]
    assert "daily budget" in body["message"]
    assert counts(engine) == (0, 0)


def test_a_batch_over_budget_stores_none(client, auth, engine, tenant, routes) -> None:
    budgets.set_budget(engine, tenant.tenant_id, estimate(routes) * 2, "week")

    response = client.post("/v1/jobs/batch", json={"jobs": [CHAT] * 3}, headers=auth)

    assert response.status_code == 402
    assert counts(engine) == (0, 0)
    assert period(engine, tenant.tenant_id).reserved_micros == 0


def test_success_settles_to_the_real_cost(client, auth, engine, tenant, runtime) -> None:
    job_id = client.post("/v1/jobs", json=CHAT, headers=auth).json()["id"]
    held = period(engine, tenant.tenant_id)  # before any worker could settle it
    assert held.reserved_micros > 0

    worker = dramatiq.Worker(runtime.broker, worker_timeout=50, worker_threads=4)
    worker.start()
    try:
        job = job_of(client, auth, job_id, {"succeeded"})
    finally:
        worker.stop()

    settled = period(engine, tenant.tenant_id)
    assert settled.reserved_micros == 0
    assert settled.spent_micros == round(job["cost_usd"] * 1_000_000) > 0
    assert job["cost_usd"] <= held.reserved_micros / 1_000_000


def test_failure_and_cancel_release_the_reservation(client, auth, engine, tenant, worker) -> None:
    refused = {**CHAT, "input": {**CHAT["input"], "max_tokens": 10**6}}
    failed = client.post("/v1/jobs", json=refused, headers=auth).json()["id"]
    job_of(client, auth, failed, {"failed"})
    worker.stop()
    queued = client.post("/v1/jobs", json=CHAT, headers=auth).json()["id"]
    client.post(f"/v1/jobs/{queued}/cancel", headers=auth)

    settled = period(engine, tenant.tenant_id)
    assert (settled.reserved_micros, settled.spent_micros) == (0, 0)


def test_usage_shows_the_budget(client, auth, engine, tenant) -> None:
    budgets.set_budget(engine, tenant.tenant_id, 5_000_000, "month")
    client.post("/v1/jobs", json=CHAT, headers=auth)

    budget = client.get("/v1/usage", headers=auth).json()["budget"]

    assert budget["limit_usd"] == 5.0
    assert budget["reserved_usd"] > 0
    assert budget["period"] == "month"
