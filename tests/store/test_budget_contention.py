"""A tenant's jobs finishing in parallel never wait on its budget (issue 14), and the
budget still comes out exact.

Before the ledger, ``lifecycle.finish`` UPDATEd the tenant's ``budget_periods`` row and held
its lock to the commit, so of N workers finishing one tenant's jobs at once all but one
waited for it, each seen in ``pg_stat_activity`` with ``wait_event_type = 'Lock'`` (a
``transactionid`` wait on the holder, its query the UPDATE of ``budget_periods``): 42 of 57
worker connections under load. Now a job's commit INSERTs a ledger entry, which locks no
row another job needs, so a sampler reading ``pg_stat_activity`` and ``pg_locks`` every few
milliseconds must see no wait on the budget at all; the same query sees the waits that
``test_budget_ledger`` provokes, so it is not blind. Speed is the benches' business: this
asserts no timing, only that no wait happened and the fold adds up.
"""

import threading
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import select

from infra.db import make_sessions
from schema.jobs import JobCreate, JobStatus
from schema.tables import Job, utcnow
from store import budget_ledger, budgets, lifecycle
from store.moves import AttemptRecord, Outcome
from store.submissions import Submission, store
from tests.producers.test_api import CHAT
from tests.store.test_budget_ledger import (
    LOCK_WAITS,
    Background,
    on_budget,
    on_postgres,
    row,
    shown,
)
from tests.waiting import eventually

THREADS = 16
JOBS_EACH = 20


@on_postgres
def test_a_tenants_jobs_finishing_in_parallel_never_wait_on_its_budget(
    engine, routes, settings, tenant
) -> None:
    budgets.set_budget(engine, tenant.tenant_id, 10**12, "month")
    sessions = make_sessions(engine)
    submissions = [Submission(JobCreate.model_validate(CHAT), None)] * (THREADS * JOBS_EACH)
    with sessions.begin() as session:
        job_ids = [done.job.id for done in store(session, routes, tenant.tenant_id, submissions)]
    start_together = threading.Barrier(THREADS)

    def finish_all(worker: int) -> None:
        start_together.wait()
        for number, job_id in enumerate(job_ids[worker::THREADS]):
            with sessions.begin() as session:
                held = lifecycle.claim(session, job_id, lease_s=60)
            assert held is not None
            cost = 1_000 + number
            attempt = AttemptRecord(
                {"status": "succeeded", "cost_micros": cost, "finished_at": utcnow()}
            )
            with sessions.begin() as session:
                outcome = Outcome(JobStatus.SUCCEEDED, {}, attempt, cost)
                lifecycle.finish(session, settings, held, outcome)

    samples, waits, stop = [0], [], threading.Event()

    def sample() -> None:
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            while not stop.is_set():
                waits.extend(wait for wait in connection.execute(LOCK_WAITS) if on_budget(wait))
                samples[0] += 1
                stop.wait(0.002)

    sampler = Background(sample)
    sampler.start()
    eventually(lambda: samples[0], bool)
    with ThreadPoolExecutor(THREADS) as pool:
        list(pool.map(finish_all, range(THREADS)))
    stop.set()
    sampler.outcome()

    assert waits == []
    with sessions() as session:
        costs = session.scalars(select(Job.cost_micros)).all()
        assert set(session.scalars(select(Job.status))) == {JobStatus.SUCCEEDED}
    assert sum(costs) == THREADS * sum(1_000 + n for n in range(JOBS_EACH))
    assert shown(sessions, tenant.tenant_id) == (sum(costs), 0)
    assert budget_ledger.fold(sessions) == len(costs)  # one entry per finish
    assert row(sessions, tenant.tenant_id) == (sum(costs), 0)
