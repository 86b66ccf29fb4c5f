"""Bench: how much of a provider's quota genq uses, and how often it is told off.

The simulator enforces RPM and TPM on one route (token buckets, like OpenAI's). A
backlog of mixed-size chat jobs from several tenants runs for a fixed time on two
worker processes, first through genq (shared limiter, tenant shares), then through
the baseline of the usual guides: plain Dramatiq actors that call the provider and, on
a 429, sleep for its Retry-After and try again, with no shared limiter. Both runs use
the same simulator limits, backlog, processes and threads.

Figures are taken after a warm-up that lets the simulator's initial one-minute burst
drain: utilization is the work the provider accepted in the measured window over what
its limits allow in that window (the binding one of requests and tokens).

    python bench/quota.py [--seconds 40] [--warmup 10] [--rpm 600] [--tpm 24000]

The last line printed is the JSON result.
"""

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from sqlalchemy import func, select
from sqlalchemy.orm import Session

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from genq.processes import free_port, wait_until  # noqa: E402
from infra.db import make_engine, migrate  # noqa: E402
from infra.redis_conn import ensure_embedded_redis, stop_embedded_redis  # noqa: E402
from producers import Producer  # noqa: E402
from schema.jobs import BatchItem  # noqa: E402
from schema.settings import Settings  # noqa: E402
from schema.tables import Job  # noqa: E402
from store.tenants import create_tenant  # noqa: E402

TENANTS = {"tenant-a": 0.6, "tenant-b": 0.3, "tenant-c": 0.1}
WORDS = [
    "queue",
    "worker",
    "token",
    "budget",
    "retry",
    "webhook",
    "latency",
    "provider",
    "tenant",
    "backlog",
]
KEY = "sk-genq-bench"


def chat_request(rng: random.Random) -> dict:
    prompt = " ".join(rng.choice(WORDS) for _ in range(rng.randint(10, 300)))
    return {
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": rng.choice([16, 32, 64, 128]),
    }


def backlog(size: int, seed: int = 7) -> dict[str, list[dict]]:
    rng = random.Random(seed)
    return {
        t: [chat_request(rng) for _ in range(int(size * share))] for t, share in TENANTS.items()
    }


class Sim:
    def __init__(self, var: Path, rpm: int, tpm: int) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "genq", "sim", "--port", str(self.port), "--latency-ms", "40"],
            stdout=open(var / "sim.log", "wb"),  # noqa: SIM115
            stderr=subprocess.STDOUT,
        )
        wait_until(self._up, 30, "the simulator")
        self.limits = {"rpm_limit": rpm, "tpm_limit": tpm}
        self.reset()

    def _up(self) -> bool:
        try:
            return httpx.get(f"{self.url}/_sim/stats", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def reset(self) -> None:
        httpx.post(f"{self.url}/_sim/config", json=self.limits).raise_for_status()
        httpx.post(f"{self.url}/_sim/reset").raise_for_status()

    def stats(self) -> tuple[int, int, int]:
        """Accepted chat calls, tokens they used, and 429s so far."""
        stats = httpx.get(f"{self.url}/_sim/stats").json()
        calls = stats["calls"].get("chat.completions", 0)
        limited = stats["rate_limited"].get("chat.completions", 0)
        errors = stats["errors"].get("chat.completions", 0)
        return calls - errors, stats["tokens"]["total_tokens"], limited

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait()


def workers(module: str, env: dict[str, str], threads: int, log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "dramatiq", module, "--processes", "2", "--threads", str(threads)],
        env=env,
        cwd=ROOT,
        stdout=open(log, "wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def measure(sim: Sim, seconds: float, warmup: float, rpm: int, tpm: int) -> dict:
    time.sleep(warmup)
    calls0, tokens0, limited0 = sim.stats()
    started = time.monotonic()
    time.sleep(seconds)
    elapsed = time.monotonic() - started
    calls1, tokens1, limited1 = sim.stats()
    rpm_use = (calls1 - calls0) / (rpm / 60 * elapsed)
    tpm_use = (tokens1 - tokens0) / (tpm / 60 * elapsed)
    return {
        "utilization": round(max(rpm_use, tpm_use), 3),
        "requests_utilization": round(rpm_use, 3),
        "tokens_utilization": round(tpm_use, 3),
        "provider_429_after_warmup": limited1 - limited0,
        "provider_429_total": limited1,
    }


def run_genq(var: Path, sim: Sim, redis_url: str, jobs: dict, args: argparse.Namespace) -> dict:
    database_url = f"sqlite:///{var / 'genq.db'}"
    engine = make_engine(database_url)
    migrate(engine)
    routes = var / "routes.toml"
    routes.write_text(
        f'[routes.openai]\nprotocol = "openai-chat"\nbase_url = "{sim.url}/v1"\n'
        f'api_key_env = "OPENAI_API_KEY"\nrpm = {args.rpm}\ntpm = {args.tpm}\n'
        f"max_attempts = 5\n"
        f'[routes.openai.models."gpt-4o-mini"]\nmax_output_tokens = 128\n'
    )
    env = {
        **os.environ,
        "GENQ_DATABASE_URL": database_url,
        "GENQ_REDIS_URL": redis_url,
        "GENQ_ROUTES_FILE": str(routes),
        "GENQ_TENANT_RATE_PER_MINUTE": "1000000",
        "OPENAI_API_KEY": KEY,
    }
    os.environ.update(env)
    producer = Producer(Settings(_env_file=None))
    tenant_ids = {}
    with Session(engine) as session, session.begin():
        for name in jobs:
            tenant_ids[name] = create_tenant(session, name).tenant_id
    for name, inputs in jobs.items():
        for start in range(0, len(inputs), 100):
            batch = [
                BatchItem(model="openai/gpt-4o-mini", input=i, cache=False)
                for i in inputs[start : start + 100]
            ]
            producer.submit_batch(tenant_ids[name], batch)
    process = workers("workers.main", env, args.threads, var / "genq-workers.log")
    try:
        figures = measure(sim, args.seconds, args.warmup, args.rpm, args.tpm)
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait()
    with Session(engine) as session:
        done = dict(
            session.execute(
                select(Job.tenant_id, func.count())
                .where(Job.status == "succeeded")
                .group_by(Job.tenant_id)
            ).all()
        )
    figures["per_tenant_completed"] = {name: done.get(tid, 0) for name, tid in tenant_ids.items()}
    producer.close()
    return figures


def run_baseline(var: Path, sim: Sim, redis_url: str, jobs: dict, args: argparse.Namespace):
    import redis
    from baseline_actors import COMPLETED_KEY, call_provider

    sim.reset()
    client = redis.Redis.from_url(redis_url)
    client.delete(COMPLETED_KEY)
    env = {**os.environ, "BENCH_REDIS_URL": redis_url, "BENCH_SIM_URL": sim.url}
    for name, inputs in jobs.items():
        for body in inputs:
            call_provider.send(name, body)
    process = workers("baseline_actors", {**env, "PYTHONPATH": str(ROOT / "bench")}, args.threads,
                      var / "baseline-workers.log")  # fmt: skip
    try:
        figures = measure(sim, args.seconds, args.warmup, args.rpm, args.tpm)
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait()
    completed = {k.decode(): int(v) for k, v in client.hgetall(COMPLETED_KEY).items()}
    figures["per_tenant_completed"] = {name: completed.get(name, 0) for name in jobs}
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=40.0)
    parser.add_argument("--warmup", type=float, default=10.0)
    parser.add_argument("--rpm", type=int, default=600)
    parser.add_argument("--tpm", type=int, default=24_000)
    parser.add_argument("--threads", type=int, default=32)
    parser.add_argument("--jobs", type=int, default=600)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        var = Path(tmp)
        redis_url = ensure_embedded_redis(var)
        os.environ["BENCH_REDIS_URL"] = redis_url
        sim = Sim(var, args.rpm, args.tpm)
        try:
            jobs = backlog(args.jobs)
            genq = run_genq(var, sim, redis_url, jobs, args)
            baseline = run_baseline(var, sim, redis_url, jobs, args)
        finally:
            sim.stop()
            stop_embedded_redis(var)
    print(
        json.dumps(
            {
                "bench": "quota",
                "limits": {"rpm": args.rpm, "tpm": args.tpm},
                "seconds": args.seconds,
                "warmup_s": args.warmup,
                **genq,
                "baseline": baseline,
            }
        )
    )


if __name__ == "__main__":
    main()
