"""The Procfile under honcho, as a developer runs it: web, worker and scheduler start,
answer their health and metrics endpoints, and run a job."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine

from genq.processes import free_port, wait_until
from simulator import SimServer
from store.tenants import NewTenant
from tests.conftest import SIM_KEY
from tests.producers.test_api import CHAT
from tests.system.test_scale import routes_file
from tests.waiting import eventually

ROOT = Path(__file__).resolve().parents[2]


def answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.mark.timeout(120)
@pytest.mark.parametrize("engine", ["postgresql"], indirect=True)
def test_honcho_runs_web_worker_and_scheduler(
    engine: Engine, redis_url: str, sim: SimServer, tenant: NewTenant, tmp_path: Path
) -> None:
    web, worker_metrics, scheduler_metrics = free_port(), free_port(), free_port()
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "PORT": str(web),
        "GENQ_DATABASE_URL": engine.url.render_as_string(hide_password=False),
        "GENQ_REDIS_URL": redis_url,
        "GENQ_BROKER": "redis",
        "GENQ_ROUTES_FILE": str(routes_file(tmp_path / "routes.toml", sim.url)),
        "GENQ_VAR_DIR": str(tmp_path / "var"),
        "GENQ_WORKER_PROCESSES": "1",
        "GENQ_WORKER_THREADS": "4",
        "GENQ_WORKER_METRICS_PORT": str(worker_metrics),
        "GENQ_SCHEDULER_METRICS_PORT": str(scheduler_metrics),
        "OPENAI_API_KEY": SIM_KEY,
    }
    log = (tmp_path / "honcho.log").open("w")
    honcho = subprocess.Popen(
        [sys.executable, "-m", "honcho", "start", "-f", "Procfile", "web", "worker", "scheduler"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        for url in (
            f"http://127.0.0.1:{web}/readyz",
            f"http://127.0.0.1:{worker_metrics}/metrics",
            f"http://127.0.0.1:{scheduler_metrics}/metrics",
        ):
            wait_until(lambda url=url: honcho.poll() is None and answers(url), 60, url)
        api = httpx.Client(
            base_url=f"http://127.0.0.1:{web}",
            headers={"Authorization": f"Bearer {tenant.api_key}"},
        )
        job = api.post("/v1/jobs", json=CHAT).json()
        done = eventually(
            lambda: api.get(f"/v1/jobs/{job['id']}").json(),
            lambda job: job["status"] not in ("queued", "running"),
            timeout_s=30,
        )
        assert done["status"] == "succeeded"
        assert honcho.poll() is None
    finally:
        os.killpg(honcho.pid, signal.SIGTERM)
        honcho.wait(30)
        log.close()
