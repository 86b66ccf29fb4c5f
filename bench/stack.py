"""Processes the benches run: the simulator, genq's own, and plain Dramatiq workers."""

import argparse
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import Engine

from genq.processes import Process, free_port, wait_until
from infra.db import make_engine, migrate, normalize_url
from infra.redis_conn import ensure_embedded_redis, stop_embedded_redis
from schema.routes import DEFAULT_ROUTES_FILE

SIM_KEY = "sk-genq-bench"
WORKER_READY = "Worker process is ready for action."
BENCH_DIR = Path(__file__).resolve().parent
# A bucket this large never runs dry in a bench: the simulator does not limit.
UNLIMITED = {"rpm_limit": 100_000_000, "tpm_limit": 1_000_000_000}


class Simulator(Process):
    """``genq sim`` in its own process on a free port, with no rate limits."""

    def __init__(self, latency_ms: float, log_dir: Path) -> None:
        self.url = f"http://127.0.0.1:{free_port()}"
        args = ["sim", "--port", self.url.rsplit(":", 1)[1], "--latency-ms", str(latency_ms)]
        super().__init__("sim", args, dict(os.environ), log_dir)
        wait_until(self._up, 30, "the simulator", [self])
        httpx.post(f"{self.url}/_sim/config", json=UNLIMITED).raise_for_status()

    def _up(self) -> bool:
        try:
            return httpx.get(f"{self.url}/_sim/stats", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def reset(self) -> None:
        """Zero the simulator's counters."""
        httpx.post(f"{self.url}/_sim/reset").raise_for_status()

    def chat_calls(self) -> tuple[int, int]:
        """Chat completions answered, and how many of them were errors."""
        stats = httpx.get(f"{self.url}/_sim/stats").raise_for_status().json()
        return stats["calls"].get("chat.completions", 0), stats["errors"].get("chat.completions", 0)


class DramatiqWorkers(Process):
    """``dramatiq plain_actors`` on one queue, in its own process group, like ``genq worker``."""

    def __init__(
        self,
        name: str,
        queue: str,
        processes: int,
        threads: int,
        env: dict[str, str],
        log_dir: Path,
    ) -> None:
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        args = ["--processes", str(processes), "--threads", str(threads), "--queues", queue]
        # The prefetch `genq worker` sets, so both hold the same number of messages.
        env = {
            **env,
            "PYTHONPATH": str(BENCH_DIR),
            "dramatiq_queue_prefetch": str(threads),
            "BENCH_THREADS": str(threads),
        }
        self.popen = subprocess.Popen(
            [sys.executable, "-m", "dramatiq", "plain_actors", *args],
            env=env,
            cwd=BENCH_DIR,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def wait_ready(workers: Process, processes: int, others: list[Process]) -> None:
    """Wait until each of the group's Dramatiq worker processes is consuming."""
    wait_until(
        lambda: workers.log_path.read_text(errors="replace").count(WORKER_READY) >= processes,
        60,
        f"{workers.name} to be ready",
        [workers, *others],
    )


def genq_env(database_url: str, redis_url: str, sim_url: str, var: Path) -> dict[str, str]:
    """The environment of genq's processes: this store and Redis, routes to the simulator."""
    routes = var / "routes.toml"
    routes.write_text(DEFAULT_ROUTES_FILE.read_text().replace("http://127.0.0.1:8900", sim_url))
    return {
        **os.environ,
        "GENQ_DATABASE_URL": database_url,
        "GENQ_REDIS_URL": redis_url,
        "GENQ_BROKER": "redis",
        "GENQ_ROUTES_FILE": str(routes),
        "GENQ_VAR_DIR": str(var / "genq-var"),
        "GENQ_TENANT_RATE_PER_MINUTE": "100000000",
        "GENQ_WORKER_METRICS_PORT": str(free_port()),
        "GENQ_SCHEDULER_METRICS_PORT": "0",
        "OPENAI_API_KEY": SIM_KEY,
    }


def stop_all(processes: list[Process]) -> None:
    """Stop every process started, the last first."""
    for process in reversed(processes):
        process.stop()


def run_on_services(
    run: Callable[[str, str, Path], dict[str, Any]],
    database_url: str | None,
    redis_url: str | None,
) -> None:
    """Run a bench on the given store and Redis, else a SQLite file and a private Redis in a
    scratch folder, and print its JSON line."""
    with tempfile.TemporaryDirectory() as tmp:
        var = Path(tmp)
        redis = redis_url or ensure_embedded_redis(var)
        try:
            result = run(database_url or f"sqlite:///{var / 'bench.db'}", redis, var)
        finally:
            if not redis_url:
                stop_embedded_redis(var)
    print(json.dumps(result))


def main_on_services(
    parser: argparse.ArgumentParser,
    run: Callable[[argparse.Namespace, str, str, Path], dict[str, Any]],
) -> None:
    """Parse a bench's arguments, with --database-url (default GENQ_DATABASE_URL) and
    --redis-url added, and run it on those services as ``run_on_services`` does."""
    parser.add_argument("--database-url", default=os.environ.get("GENQ_DATABASE_URL"))
    parser.add_argument("--redis-url")
    args = parser.parse_args()
    run_on_services(
        lambda database_url, redis_url, var: run(args, database_url, redis_url, var),
        args.database_url,
        args.redis_url,
    )


@contextmanager
def bench_stack(
    database_url: str, redis_url: str, latency_ms: float, var: Path
) -> Iterator[tuple[Engine, "Simulator", dict[str, str]]]:
    """A migrated store, the simulator, and the environment the bench's processes share
    (genq's, plus where the baseline actors find Redis, the simulator and the store);
    the simulator is stopped and the engine disposed afterwards."""
    engine = make_engine(database_url)
    migrate(engine)
    sim = Simulator(latency_ms, var)
    try:
        env = genq_env(database_url, redis_url, sim.url, var)
        os.environ.update(BENCH_REDIS_URL=redis_url, BENCH_SIM_URL=sim.url)
        env.update(
            BENCH_REDIS_URL=redis_url,
            BENCH_SIM_URL=sim.url,
            BENCH_DATABASE_URL=normalize_url(database_url).render_as_string(hide_password=False),
        )
        yield engine, sim, env
    finally:
        stop_all([sim])
        engine.dispose()
