"""``make demo``: genq end to end on embedded defaults (or the configured services).

It starts the simulator, the API, a worker and the scheduler as real processes,
enqueues chat jobs over HTTP, waits for them, prints what happened and stops
everything it started.
"""

import os
import sys
import time
from datetime import datetime
from pathlib import Path

import httpx
from rich.console import Console
from rich.progress import Progress
from rich.table import Table
from sqlalchemy.orm import Session

from genq.processes import Process, free_port, wait_until
from producers.tenants import create_tenant
from schema.jobs import TERMINAL_STATUSES
from schema.redis_conn import embedded_redis_runs, redis_url, stop_embedded_redis
from schema.settings import Settings
from schema.store import make_engine, migrate

PROMPTS = [
    "Write a haiku about queues.",
    "Explain exponential backoff in one sentence.",
    "Name three uses of a dead-letter queue.",
    "Summarize what a webhook is for a new engineer.",
    "Give a tagline for a job system for AI workloads.",
    "What does idempotency mean for an HTTP API?",
]
MODELS = ["openai/gpt-4o-mini", "openai/gpt-4o", "openai/gpt-4.1-mini"]
DEMO_KEY = "sk-genq-demo"


def _routes_file(path: Path, sim_port: int) -> Path:
    models = ", ".join(f'"{m.split("/")[1]}"' for m in MODELS)
    path.write_text(
        "[routes.openai]\n"
        'protocol = "openai-chat"\n'
        f'base_url = "http://127.0.0.1:{sim_port}/v1"\n'
        'api_key_env = "OPENAI_API_KEY"\n'
        f"models = [{models}]\n"
        "timeout_s = 30.0\n"
        "max_attempts = 3\n"
    )
    return path


def _job_requests(count: int) -> list[dict[str, object]]:
    requests: list[dict[str, object]] = []
    for i in range(count - 1):
        prompt = PROMPTS[i % len(PROMPTS)]
        requests.append(
            {
                "model": MODELS[i % len(MODELS)],
                "input": {"messages": [{"role": "user", "content": prompt}], "max_tokens": 48},
                "metadata": {"demo_index": i},
            }
        )
    # One job the provider refuses (over the model's context window): it fails for good.
    requests.append(
        {
            "model": MODELS[0],
            "input": {"messages": [{"role": "user", "content": "Too long"}], "max_tokens": 10**6},
            "metadata": {"demo_index": count - 1},
        }
    )
    return requests


def run_demo(job_count: int) -> int:
    console = Console(width=None if sys.stdout.isatty() else 120)
    settings = Settings()
    var = settings.var_dir
    var.mkdir(parents=True, exist_ok=True)
    started_redis = settings.embedded_redis and not embedded_redis_runs(var)
    env = dict(os.environ, OPENAI_API_KEY=DEMO_KEY, GENQ_REDIS_URL=redis_url(settings))
    engine = make_engine(settings.database_url_value)
    migrate(engine)
    with Session(engine) as session, session.begin():
        tenant = create_tenant(session, f"demo-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}")
    engine.dispose()
    console.print(
        f"[bold]genq demo[/] store={engine.url.get_backend_name()}"
        f" redis={'embedded' if settings.embedded_redis else 'GENQ_REDIS_URL'}"
    )

    sim_port, api_port = free_port(), free_port()
    env["GENQ_ROUTES_FILE"] = str(_routes_file(var / "demo-routes.toml", sim_port))
    specs = {
        "sim": ["sim", "--port", str(sim_port)],
        "api": ["api", "--port", str(api_port)],
        "worker": ["worker", "--processes", "1", "--threads", "8"],
        "scheduler": ["scheduler"],
    }
    processes: list[Process] = []
    try:
        for name, args in specs.items():
            processes.append(Process(name, args, env, var))
        api_url = f"http://127.0.0.1:{api_port}"
        wait_until(lambda: _ready(api_url), 60, "the API to be ready", processes)
        console.print(f"started sim, api ({api_url}), worker, scheduler; logs in {var}/")
        headers = {"Authorization": f"Bearer {tenant.api_key}"}
        with httpx.Client(base_url=api_url, headers=headers, timeout=30) as client:
            job_ids = _enqueue(client, console, _job_requests(job_count))
            jobs = _wait_for(client, console, job_ids, processes)
    finally:
        for process in reversed(processes):
            process.stop()
        if started_redis:
            stop_embedded_redis(var)
    return _report(console, jobs)


def _ready(api_url: str) -> bool:
    try:
        return httpx.get(f"{api_url}/readyz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _enqueue(
    client: httpx.Client, console: Console, requests: list[dict[str, object]]
) -> list[str]:
    job_ids = []
    with Progress(console=console, transient=False) as progress:
        task = progress.add_task("enqueue", total=len(requests))
        for i, body in enumerate(requests):
            response = client.post("/v1/jobs", json=body, headers={"Idempotency-Key": f"demo-{i}"})
            response.raise_for_status()
            job_ids.append(response.json()["id"])
            progress.advance(task)
    return job_ids


def _wait_for(
    client: httpx.Client, console: Console, job_ids: list[str], processes: list[Process]
) -> list[dict[str, object]]:
    done: dict[str, dict[str, object]] = {}
    with Progress(console=console, transient=False) as progress:
        task = progress.add_task("complete", total=len(job_ids))

        def all_done() -> bool:
            for job_id in job_ids:
                if job_id not in done:
                    job = client.get(f"/v1/jobs/{job_id}").json()
                    if job["status"] in TERMINAL_STATUSES:
                        done[job_id] = job
                        progress.advance(task)
            return len(done) == len(job_ids)

        wait_until(all_done, 120, "the jobs to finish", processes)
    return [done[job_id] for job_id in job_ids]


def _report(console: Console, jobs: list[dict[str, object]]) -> int:
    table = Table(title="jobs", expand=True)
    for column in ("job", "model", "status", "tokens in/out", "s"):
        table.add_column(column, no_wrap=True)
    table.add_column("output / error", no_wrap=True, overflow="ellipsis", ratio=1)
    for job in jobs:
        usage = job.get("usage") or {}
        seconds = _seconds(job["created_at"], job["finished_at"])
        text = (job.get("output") or {}).get("text") or (job.get("error") or {}).get("message")
        table.add_row(
            str(job["id"]),
            str(job["model"]),
            str(job["status"]),
            f"{usage.get('prompt_tokens', '-')}/{usage.get('completion_tokens', '-')}",
            f"{seconds:.2f}",
            (str(text) or "")[:60],
        )
    console.print(table)
    succeeded = sum(job["status"] == "succeeded" for job in jobs)
    failed = sum(job["status"] == "failed" for job in jobs)
    print(f"demo: {len(jobs)} jobs, {succeeded} succeeded, {failed} failed", flush=True)
    return 0 if succeeded + failed == len(jobs) else 1


def _seconds(start: object, end: object) -> float:
    return (datetime.fromisoformat(str(end)) - datetime.fromisoformat(str(start))).total_seconds()
