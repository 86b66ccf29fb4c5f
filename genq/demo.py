"""``make demo``: genq end to end on embedded defaults (or the configured services).

It starts the simulator, the API, a worker and the scheduler as real processes,
enqueues a mix of chat (OpenAI and Anthropic protocols), image and two short video jobs (Google
Veo and fal's queue)
over HTTP, waits for them, sends one request again to show the result cache, prints
what happened and what it cost, and stops everything it started.

Every result also goes out as a signed webhook to the simulator's sample receiver, which
verifies each one with the stock ``standardwebhooks`` library: once to a tenant endpoint
and, for one job, to that job's own ``webhook_url``.
"""

import os
import re
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
from infra.db import make_engine, migrate
from infra.redis_conn import embedded_redis_runs, redis_url, stop_embedded_redis
from schema.jobs import TERMINAL_STATUSES
from schema.routes import DEFAULT_ROUTES_FILE
from schema.settings import Settings
from store.tenants import create_tenant

PROMPTS = [
    "Write a haiku about queues.",
    "Explain exponential backoff in one sentence.",
    "Name three uses of a dead-letter queue.",
    "Summarize what a webhook is for a new engineer.",
    "What does idempotency mean for an HTTP API?",
]
DEMO_KEYS = {
    "OPENAI_API_KEY": "sk-genq-demo",
    "ANTHROPIC_API_KEY": "sk-ant-genq-demo",
    "REPLICATE_API_TOKEN": "r8_genq_demo",
    "GOOGLE_API_KEY": "AIza-genq-demo-key",
    "FAL_KEY": "fal-genq-demo-key",
}


SIM_TIME_SCALE = 0.02
ENDPOINT_HOOK = "demo-endpoint"
JOB_HOOK = "demo-job"


def _routes_file(path: Path, sim_port: int) -> Path:
    """The shipped default routes, pointed at this run's simulator, whose videos run 50
    times faster than real ones: their expected durations are scaled to match."""
    text = DEFAULT_ROUTES_FILE.read_text().replace("127.0.0.1:8900", f"127.0.0.1:{sim_port}")
    text = re.sub(
        r"(expected_duration_s|max_duration_s) = (\d+)",
        lambda m: f"{m[1]} = {int(m[2]) * SIM_TIME_SCALE:g}",
        text,
    )
    path.write_text(text)
    return path


def _chat(model: str, prompt: str) -> dict[str, object]:
    return {
        "model": model,
        "input": {"messages": [{"role": "user", "content": prompt}], "max_tokens": 48},
    }


def _job_requests(count: int) -> list[dict[str, object]]:
    """A mix of chat, image and video jobs, ending with one the provider refuses for good."""
    makers = [
        lambda p: _chat("openai/gpt-4o-mini", p),
        lambda p: _chat("anthropic/claude-haiku-4-5", p),
        lambda p: {
            "model": "openai-images/gpt-image-1",
            "input": {"prompt": p, "size": "1024x1024"},
        },
        lambda p: _chat("openai/gpt-4o", p),
    ]
    requests = [makers[i % len(makers)](PROMPTS[i % len(PROMPTS)]) for i in range(count - 4)]
    requests += [
        {
            "model": "veo/veo-3.0-fast-generate-001",
            "input": {
                "instances": [{"prompt": "A lighthouse at dawn, waves below"}],
                "parameters": {"durationSeconds": 4},
            },
        },
        {
            "model": "fal/fal-ai/veo3/fast",
            "input": {"prompt": "A queue of paper boats on a river", "duration": "4s"},
        },
    ]
    too_long = _chat("openai/gpt-4o-mini", "Too long")
    too_long["input"]["max_tokens"] = 10**6  # type: ignore[index]
    return [*requests, too_long]


def run_demo(job_count: int) -> int:
    console = Console(width=None if sys.stdout.isatty() else 160)
    settings = Settings()
    var = settings.var_dir
    var.mkdir(parents=True, exist_ok=True)
    started_redis = settings.embedded_redis and not embedded_redis_runs(var)
    env = dict(
        os.environ,
        **DEMO_KEYS,
        GENQ_REDIS_URL=redis_url(settings),
        GENQ_WEBHOOK_ALLOW_NETWORKS="127.0.0.0/8",
    )
    engine = make_engine(settings.database_url_value)
    migrate(engine)
    with Session(engine) as session, session.begin():
        tenant = create_tenant(session, f"demo-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}")
    engine.dispose()
    console.print(
        f"[bold]genq demo[/] store={engine.url.get_backend_name()}"
        f" redis={'embedded' if settings.embedded_redis else 'GENQ_REDIS_URL'}"
    )

    sim_port, api_port, metrics_port = free_port(), free_port(), free_port()
    env["GENQ_WORKER_METRICS_PORT"] = str(metrics_port)
    env["GENQ_SCHEDULER_METRICS_PORT"] = "0"
    env["GENQ_ROUTES_FILE"] = str(_routes_file(var / "demo-routes.toml", sim_port))
    specs = {
        "sim": ["sim", "--port", str(sim_port), "--time-scale", str(SIM_TIME_SCALE)],
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
        sim_url = f"http://127.0.0.1:{sim_port}"
        with httpx.Client(base_url=api_url, headers=headers, timeout=30) as client:
            _receive_webhooks(client, sim_url, tenant.webhook_secret)
            requests = _job_requests(max(job_count, 5))
            requests[0]["webhook_url"] = f"{sim_url}/hooks/{JOB_HOOK}"
            jobs = _run(client, console, requests[:-1], processes)
            console.print("sending the first request again: it should come from the cache")
            jobs += _run(client, console, [requests[0], requests[-1]], processes)
            verified = _webhooks_verified(client, console, sim_url, processes)
            _show_metrics(console, f"http://127.0.0.1:{metrics_port}/metrics")
    finally:
        for process in reversed(processes):
            process.stop()
        if started_redis:
            stop_embedded_redis(var)
    return _report(console, jobs, verified)


def _receive_webhooks(client: httpx.Client, sim_url: str, default_secret: str) -> None:
    """A tenant endpoint on the sample receiver, which learns each secret to verify with."""
    endpoint = client.post(
        "/v1/webhook-endpoints",
        json={"url": f"{sim_url}/hooks/{ENDPOINT_HOOK}", "description": "demo"},
    )
    endpoint.raise_for_status()
    for hook, secret in ((ENDPOINT_HOOK, endpoint.json()["secret"]), (JOB_HOOK, default_secret)):
        httpx.put(f"{sim_url}/_sim/hooks/{hook}", json={"secrets": [secret]}).raise_for_status()


def _webhooks_verified(
    client: httpx.Client, console: Console, sim_url: str, processes: list[Process]
) -> int:
    """Wait until no delivery is pending; return how many the receiver verified."""

    def delivered() -> bool:
        pending = client.get("/v1/webhook-deliveries", params={"status": "pending"})
        return pending.json()["data"] == []

    wait_until(delivered, 60, "the webhooks to be delivered", processes)
    hooks = httpx.get(f"{sim_url}/_sim/hooks").json()["data"]
    verified = sum(hook["verified"] for hook in hooks)
    bad = sum(hook["bad_signature"] + hook["unverified"] for hook in hooks)
    console.print(
        f"webhooks: the sample receiver verified {verified} deliveries "
        f"with the standardwebhooks library; {bad} failed verification"
    )
    return verified


def _show_metrics(console: Console, url: str) -> None:
    """What the worker's Prometheus endpoint says it did."""
    wanted = ("genq_jobs_total{", "genq_webhook_attempts_total{")
    exposed = httpx.get(url, timeout=5).text.splitlines()
    lines = [line for line in exposed if line.startswith(wanted)]
    console.print(f"worker metrics ({url}):")
    for line in lines:
        console.print(f"  {line}", markup=False, highlight=False)


def _ready(api_url: str) -> bool:
    try:
        return httpx.get(f"{api_url}/readyz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _run(
    client: httpx.Client,
    console: Console,
    requests: list[dict[str, object]],
    processes: list[Process],
) -> list[dict[str, object]]:
    """Enqueue ``requests`` with a progress bar, then wait for all of them to finish."""
    with Progress(console=console, transient=False) as progress:
        task = progress.add_task("enqueue", total=len(requests))
        job_ids = []
        for body in requests:
            response = client.post("/v1/jobs", json=body)
            response.raise_for_status()
            job_ids.append(response.json()["id"])
            progress.advance(task)

        done: dict[str, dict[str, object]] = {}
        waiting = progress.add_task("complete", total=len(job_ids))

        def all_done() -> bool:
            for job_id in job_ids:
                if job_id not in done:
                    job = client.get(f"/v1/jobs/{job_id}").json()
                    if job["status"] in TERMINAL_STATUSES:
                        done[job_id] = job
                        progress.advance(waiting)
            return len(done) == len(job_ids)

        wait_until(all_done, 120, "the jobs to finish", processes)
    return [done[job_id] for job_id in job_ids]


def _report(console: Console, jobs: list[dict[str, object]], verified: int) -> int:
    table = Table(title="jobs", expand=True)
    for column in ("job", "model", "status", "tokens in/out", "cost $", "cache", "s"):
        table.add_column(column, no_wrap=True)
    table.add_column("output / error", no_wrap=True, overflow="ellipsis", ratio=1)
    for job in jobs:
        usage = job.get("usage") or {}
        output = job.get("output") or {}
        images = output.get("images")
        text = (
            output.get("text")
            or output.get("urls")
            or (f"{len(images)} image(s)" if images else None)
            or (job.get("error") or {}).get("message")
        )
        table.add_row(
            str(job["id"]),
            str(job["model"]),
            str(job["status"]),
            f"{usage.get('input_tokens', '-')}/{usage.get('output_tokens', '-')}",
            f"{job['cost_usd']:.6f}",
            "hit" if job["cached"] else "",
            f"{_seconds(job['created_at'], job['finished_at']):.2f}",
            str(text or ""),
        )
    console.print(table)
    succeeded = sum(job["status"] == "succeeded" for job in jobs)
    failed = sum(job["status"] == "failed" for job in jobs)
    hits = sum(bool(job["cached"]) for job in jobs)
    total = sum(float(job["cost_usd"]) for job in jobs)  # type: ignore[arg-type]
    print(f"cost: ${total:.6f} in all, {hits} cache hit(s)", flush=True)
    print(
        f"demo: {len(jobs)} jobs, {succeeded} succeeded, {failed} failed, "
        f"{verified} webhooks verified",
        flush=True,
    )
    return 0 if succeeded + failed == len(jobs) else 1


def _seconds(start: object, end: object) -> float:
    return (datetime.fromisoformat(str(end)) - datetime.fromisoformat(str(start))).total_seconds()
