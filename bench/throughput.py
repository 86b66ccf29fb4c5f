"""Bench: jobs per second and CPU per job through the whole of genq, against plain Dramatiq.

N distinct OpenAI chat jobs (no result cache) are enqueued beforehand, 100 per batch, with
their Dramatiq messages held back; then `genq worker` (P processes, T threads each) and the
scheduler start on an empty queue and, once every worker process is ready, the messages
are sent. The clock runs from the first send to the moment the store shows every job
terminal (polled every 50 ms). Two baselines run the same way, with the same processes,
threads and prefetch, on the same Redis, against the same simulator: a plain Dramatiq
actor making the same HTTP call and storing nothing, and the same actor plus one INSERT
of the answer into a table of the same database (the durable baseline).

CPU per job: the worker processes' user and system time (their process tree, read from
/proc), and the whole machine's busy time from /proc/stat (simulator, Redis, database,
scheduler and this bench included), each over the measured window.

    python bench/throughput.py [--jobs 3000] [--processes 2] [--threads 32]
        [--latency-ms 20] [--database-url URL] [--redis-url URL] [--timeout-s 150]
        [--rounds 1]

Defaults: 3,000 jobs (about two minutes in all on a 2-core machine), the database of
GENQ_DATABASE_URL or --database-url if given, else a fresh SQLite file; a private Redis
unless --redis-url. The simulator runs as its own process. The last line printed is JSON.
With --rounds N, the three systems run N times in turn, and each figure and ratio printed
is the median over the rounds (``ratios_vs_durable`` lists each round's).
"""

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dramatiq import Broker, Message
from dramatiq.brokers.stub import StubBroker
from pydantic import SecretStr
from sqlalchemy import Engine, func, select

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cpu import CpuMeter
from stack import (
    DramatiqWorkers,
    Simulator,
    bench_stack,
    main_on_services,
    stop_all,
    wait_ready,
)

from genq.processes import Process
from infra.broker_upkeep import mark_epoch
from infra.brokers import make_broker
from producers import Producer
from schema.jobs import TERMINAL_STATUSES, BatchItem, JobStatus
from schema.settings import Settings
from schema.tables import Job
from store.tenants import create_tenant

POLL_INTERVAL_S = 0.05


class HeldMessages(StubBroker):
    """A broker that keeps what it is sent, to be sent for real later."""

    def __init__(self) -> None:
        super().__init__(middleware=[])
        self.held: list[Message] = []

    def enqueue(self, message: Message, *, delay: int | None = None) -> Message:
        self.held.append(message)
        return message


def send_all(broker: Broker, messages: list[Message]) -> None:
    """Send the messages to the broker's queues, one at a time as the outbox does."""
    for message in messages:
        broker.enqueue(message)


@dataclass(frozen=True)
class Figures:
    """One system's run: its wall time and the CPU it used."""

    jobs: int
    seconds: float
    worker_cpu_s: float
    machine_cpu_s: float

    def as_dict(self) -> dict[str, float]:
        return {
            "jobs_per_s": round(self.jobs / self.seconds, 1),
            "cpu_ms_per_job": round(self.worker_cpu_s * 1000 / self.jobs, 2),
            "machine_cpu_ms_per_job": round(self.machine_cpu_s * 1000 / self.jobs, 2),
            "seconds": round(self.seconds, 2),
        }


def measure(
    workers: Process,
    others: list[Process],
    send: Callable[[], None],
    done: Callable[[], bool],
    jobs: int,
    timeout_s: float,
) -> Figures:
    """Time from calling ``send`` until ``done``, with the CPU used meanwhile."""
    meter = CpuMeter(workers.popen.pid)
    meter.start()
    started = time.perf_counter()
    send()
    while not done():
        for process in (workers, *others):
            if not process.alive():
                raise RuntimeError(f"{process.name} exited:\n{process.log_tail()}")
        if time.perf_counter() - started > timeout_s:
            raise TimeoutError(f"{workers.name}: not done after {timeout_s:.0f}s")
        time.sleep(POLL_INTERVAL_S)
    elapsed = time.perf_counter() - started
    meter.stop()
    return Figures(jobs, elapsed, meter.tree_s, meter.machine_s)


def run_plain(
    queue: str, sim: Simulator, env: dict[str, str], args: argparse.Namespace, var: Path
) -> Figures:
    """One baseline: plain Dramatiq workers on ``queue``, all messages sent at once."""
    import plain_actors

    actor = {"bench.plain": plain_actors.call, "bench.durable": plain_actors.call_and_insert}[queue]
    messages = [actor.message(f"{queue}-{number}") for number in range(args.jobs)]
    client = plain_actors.broker.client
    pending = f"{plain_actors.NAMESPACE}:{queue}.msgs"
    sim.reset()
    workers = DramatiqWorkers(queue, queue, args.processes, args.threads, env, var)
    try:
        wait_ready(workers, args.processes, [sim])
        figures = measure(
            workers,
            [sim],
            lambda: send_all(plain_actors.broker, messages),
            lambda: client.llen(f"{plain_actors.NAMESPACE}:{queue}") + client.hlen(pending) == 0,
            args.jobs,
            args.timeout_s,
        )
    finally:
        workers.stop()
    calls, errors = sim.chat_calls()
    log = workers.log_path.read_text(errors="replace")
    if calls != args.jobs or errors or "Traceback" in log:
        first = log[log.find("Traceback") :][:3000]
        raise SystemExit(f"{queue}: {calls} calls, {errors} errors; first failure:\n{first}")
    return figures


def run_durable(
    engine: Engine, sim: Simulator, env: dict[str, str], args: argparse.Namespace, var: Path
) -> Figures:
    """The durable baseline: the plain actor plus an INSERT; checks every row is there."""
    from plain_actors import metadata, results_table

    metadata.drop_all(engine)
    metadata.create_all(engine)
    try:
        figures = run_plain("bench.durable", sim, env, args, var)
        with engine.connect() as connection:
            rows = connection.scalar(select(func.count()).select_from(results_table))
    finally:
        metadata.drop_all(engine)
    if rows != args.jobs:
        raise SystemExit(f"durable baseline stored {rows} of {args.jobs} rows")
    return figures


def held_jobs(settings: Settings, engine: Engine, jobs: int) -> tuple[str, list[Message]]:
    """A new tenant with ``jobs`` distinct chat jobs stored; their unsent messages.

    The broker gets the epoch marker a running scheduler leaves first: without it, the
    scheduler the bench starts would take the stored jobs for those of a broker that
    lost its data, and send each of them a second time."""
    broker = make_broker(settings, consumer=False)
    try:
        mark_epoch(broker)
    finally:
        broker.close()
    held = HeldMessages()
    producer = Producer(settings, engine=engine, broker=held)
    try:
        with producer.sessions.begin() as session:
            tenant_id = create_tenant(session, f"bench-{time.time_ns()}").tenant_id
        items = [
            BatchItem(
                model="openai/gpt-4o-mini",
                input={"messages": [{"role": "user", "content": f"bench job {number}"}],
                       "max_tokens": 16},
                cache=False,
            )
            for number in range(jobs)
        ]  # fmt: skip
        size = settings.batch_max_jobs
        for start in range(0, jobs, size):
            producer.submit_batch(tenant_id, items[start : start + size])
    finally:
        producer.close()
    return tenant_id, held.held


def genq_settings(env: dict[str, str]) -> Settings:
    """The settings of genq's processes, for the bench's own producer."""
    return Settings(
        database_url=SecretStr(env["GENQ_DATABASE_URL"]),
        redis_url=SecretStr(env["GENQ_REDIS_URL"]),
        routes_file=Path(env["GENQ_ROUTES_FILE"]),
        tenant_rate_per_minute=int(env["GENQ_TENANT_RATE_PER_MINUTE"]),
        _env_file=None,
    )


def run_genq(
    engine: Engine, sim: Simulator, env: dict[str, str], args: argparse.Namespace, var: Path
) -> Figures:
    """genq: `genq worker` and the scheduler, jobs stored beforehand, messages sent at once."""
    settings = genq_settings(env)
    started = time.perf_counter()
    tenant_id, messages = held_jobs(settings, engine, args.jobs)
    print(f"genq: {args.jobs} jobs stored in {time.perf_counter() - started:.1f}s", flush=True)
    broker = make_broker(settings, consumer=False)
    ended = (
        select(func.count())
        .select_from(Job)
        .where(Job.tenant_id == tenant_id, Job.status.in_(TERMINAL_STATUSES))
    )

    def done() -> bool:
        with engine.connect() as connection:
            return connection.scalar(ended) == args.jobs

    sim.reset()
    worker_args = ["worker", "--processes", str(args.processes), "--threads", str(args.threads)]
    env = {**env, "GENQ_WORKER_PROCESSES": str(args.processes),
           "GENQ_WORKER_THREADS": str(args.threads)}  # fmt: skip
    processes: list[Process] = []
    try:
        processes.append(Process("scheduler", ["scheduler"], env, var))
        processes.append(Process("genq-worker", worker_args, env, var))
        wait_ready(processes[-1], args.processes, [sim, *processes])
        figures = measure(
            processes[-1],
            [sim, processes[0]],
            lambda: send_all(broker, messages),
            done,
            args.jobs,
            args.timeout_s,
        )
    finally:
        stop_all(processes)
        broker.close()
    with engine.connect() as connection:
        statuses = dict(
            connection.execute(
                select(Job.status, func.count())
                .where(Job.tenant_id == tenant_id)
                .group_by(Job.status)
            ).all()
        )
    calls, errors = sim.chat_calls()
    if statuses != {JobStatus.SUCCEEDED: args.jobs}:
        raise SystemExit(f"genq: jobs ended {statuses}")
    print(f"genq: {calls} calls to the simulator, {errors} errors", flush=True)
    return figures


@dataclass(frozen=True)
class Round:
    """One round: each system once, back to back, so the ratios compare like with like."""

    dramatiq: Figures
    durable: Figures
    genq: Figures

    def ratios(self) -> dict[str, float]:
        return {
            "ratio_vs_durable": round(self.durable.seconds / self.genq.seconds, 3),
            "ratio_vs_dramatiq": round(self.dramatiq.seconds / self.genq.seconds, 3),
            "cpu_ratio_vs_durable": round(self.genq.worker_cpu_s / self.durable.worker_cpu_s, 2),
        }


def median_figures(figures: list[Figures]) -> dict[str, float]:
    """Each figure's median over the rounds."""
    rows = [one.as_dict() for one in figures]
    return {key: round(statistics.median(row[key] for row in rows), 2) for key in rows[0]}


def run(args: argparse.Namespace, database_url: str, redis_url: str, var: Path) -> dict[str, Any]:
    """Start the simulator; per round, both baselines and then genq; the JSON result, with
    each figure and ratio the median over the rounds (a noisy host moves single runs)."""
    rounds: list[Round] = []
    with bench_stack(database_url, redis_url, args.latency_ms, var) as (engine, sim, env):
        for number in range(1, args.rounds + 1):
            dramatiq_figures = run_plain("bench.plain", sim, env, args, var)
            print(f"round {number}, plain Dramatiq: {dramatiq_figures.as_dict()}", flush=True)
            durable = run_durable(engine, sim, env, args, var)
            print(f"round {number}, durable baseline: {durable.as_dict()}", flush=True)
            genq = run_genq(engine, sim, env, args, var)
            print(f"round {number}, genq: {genq.as_dict()}", flush=True)
            rounds.append(Round(dramatiq_figures, durable, genq))
            print(f"round {number}: {rounds[-1].ratios()}", flush=True)
    per_round = [one.ratios() for one in rounds]
    return {
        "bench": "throughput",
        "jobs": args.jobs,
        "processes": args.processes,
        "threads": args.threads,
        "latency_ms": args.latency_ms,
        "store": engine.url.get_backend_name(),
        "rounds": args.rounds,
        **median_figures([one.genq for one in rounds]),
        **{key: round(statistics.median(row[key] for row in per_round), 3) for key in per_round[0]},
        "ratios_vs_durable": [row["ratio_vs_durable"] for row in per_round],
        "durable": median_figures([one.durable for one in rounds]),
        "dramatiq": median_figures([one.dramatiq for one in rounds]),
    }


def rounds_count(text: str) -> int:
    """A --rounds value: a whole number of at least 1."""
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1, not {text!r}")
    return int(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=3000)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--threads", type=int, default=32)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--timeout-s", type=float, default=150.0, help="Bound on each system.")
    parser.add_argument(
        "--rounds",
        type=rounds_count,
        default=1,
        help="Rounds of all three; figures are their medians.",
    )
    main_on_services(parser, run)


if __name__ == "__main__":
    main()
