"""The on-call path, end to end on real processes (``genq api`` and ``genq worker``): a
route starts failing, 20 jobs dead-letter; an operator signs in to the console, filters by
the error class, the dry run shows the 20, the route is healthy again, the operator
requeues them, the jobs succeed and the audit log names the operator."""

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import Engine, func, select

from genq.processes import Process, free_port, wait_until
from schema.tables import AuditEntry, DeadLetter, Job
from simulator import SimServer
from store.tenants import NewTenant
from tests.conftest import SIM_KEY, SimControl
from tests.console.conftest import sign_in
from tests.producers.console.conftest import admin_key
from tests.system.test_scale import WORKER_READY
from tests.waiting import eventually

JOBS = 20
ROUTES = """
[routes.openai]
protocol = "openai-chat"
base_url = "{sim}/v1"
api_key_env = "OPENAI_API_KEY"
max_attempts = 1

[routes.openai.models."gpt-4o-mini"]
input_per_mtok = 0.15
output_per_mtok = 0.60
"""


@pytest.fixture
def genq(engine: Engine, redis_url: str, sim: SimServer, tmp_path: Path) -> Iterator[str]:
    """``genq api`` and ``genq worker`` as processes on the test's store; the API's URL."""
    routes = tmp_path / "routes.toml"
    routes.write_text(ROUTES.format(sim=sim.url))
    port = free_port()
    env = {
        **os.environ,
        "GENQ_DATABASE_URL": engine.url.render_as_string(hide_password=False),
        "GENQ_REDIS_URL": redis_url,
        "GENQ_BROKER": "redis",
        "GENQ_ROUTES_FILE": str(routes),
        "GENQ_VAR_DIR": str(tmp_path / "var"),
        "GENQ_WORKER_METRICS_PORT": "0",
        "OPENAI_API_KEY": SIM_KEY,
    }
    api = Process("api", ["api", "--port", str(port)], env, tmp_path)
    worker = Process("worker", ["worker", "--processes", "1", "--threads", "4"], env, tmp_path)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _up(url), 30, "the API to answer", [api])
        wait_until(
            lambda: WORKER_READY in worker.log_path.read_text(errors="replace"),
            60,
            "the worker to be ready",
            [worker],
        )
        yield url
    finally:
        worker.stop()
        api.stop()


def _up(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _count(engine: Engine, *where) -> int:  # type: ignore[no-untyped-def]
    with engine.connect() as connection:
        return int(connection.scalar(select(func.count()).select_from(Job).where(*where)) or 0)


def _open_letters(engine: Engine) -> int:
    with engine.connect() as connection:
        query = select(func.count()).select_from(DeadLetter).where(DeadLetter.status == "open")
        return int(connection.scalar(query) or 0)


@pytest.mark.parametrize("engine", ["postgresql"], indirect=True)
def test_an_operator_requeues_twenty_dead_letters_from_the_console(
    engine: Engine,
    genq: str,
    tenant: NewTenant,
    sim_control: SimControl,
    page: Page,
    shot: Callable[[Page, str], None],
) -> None:
    sim_control.faults({"endpoint": "chat.completions", "kind": "status", "code": 401})
    jobs = [
        {
            "model": "openai/gpt-4o-mini",
            "input": {"messages": [{"role": "user", "content": f"q{i}"}]},
        }
        for i in range(JOBS)
    ]
    submitted = httpx.post(
        f"{genq}/v1/jobs/batch",
        json={"jobs": jobs},
        headers={"Authorization": f"Bearer {tenant.api_key}"},
    )
    assert submitted.status_code == 202, submitted.text
    eventually(lambda: _open_letters(engine), lambda n: n == JOBS, timeout_s=60)

    sign_in(page, genq, admin_key(engine, "oncall-op", "operator").key)
    shot(page, "overview-incident")
    page.get_by_role("link", name="Dead letters").click()
    page.get_by_label("error class").fill("auth_error")
    page.get_by_role("button", name="Filter", exact=True).click()
    expect(page.get_by_role("heading", name=f"{JOBS} open letters")).to_be_visible()
    shot(page, "dead-letters-filtered")

    page.get_by_role("button", name="Dry run on every letter matching the filter").click()
    expect(page.locator(".would-move")).to_have_text(str(JOBS))
    shot(page, "dead-letters-dry-run")

    sim_control.faults()  # the route is healthy again
    page.get_by_role("button", name=f"Requeue these {JOBS}").click()
    expect(page.locator("#dry-run .state")).to_have_text("done", timeout=30_000)
    expect(page.locator("#dry-run .done-count")).to_have_text(str(JOBS))
    shot(page, "dead-letters-requeued")

    eventually(lambda: _count(engine, Job.status == "succeeded"), lambda n: n == JOBS, 60)
    assert _open_letters(engine) == 0

    page.get_by_role("link", name="Audit").click()
    page.get_by_label("action").fill("requeue")
    page.get_by_role("button", name="Filter", exact=True).click()
    expect(page.locator(".audit-entry .actor").first).to_have_text("admin:oncall-op")
    shot(page, "audit-requeue")
    with engine.connect() as connection:
        acted = connection.execute(
            select(AuditEntry.actor, AuditEntry.count).where(
                AuditEntry.action == "requeue", AuditEntry.dry_run.is_(False)
            )
        ).all()
    assert acted == [("admin:oncall-op", JOBS)]
