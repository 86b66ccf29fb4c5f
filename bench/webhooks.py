"""Bench: webhook deliveries per second, genq's worker against a plain httpx loop.

genq records N ``job.succeeded`` events for one endpoint (event, pending delivery and
outbox row, committed 100 at a time), then sends their outbox rows as the system does to
an in-process Dramatiq worker with T threads: each row is the endpoint's coalesced
message, so while one waits or works the rows after it send none, and each message
claims up to a batch of what is due (``workers/webhooks/due.py``). The figure runs from
the first send until the store shows every delivery succeeded (polled every 50 ms). Each
delivery is claimed in the store, signed, POSTed, and its attempt and outcome committed.
All of them go to one receiver, so the bench raises ``webhook_max_in_flight`` (10 by
default) to T; the worker polls an idle queue every 100 ms rather than Dramatiq's 1 s, so
it does not sleep through the first message.

The baseline posts the same N bodies, signed the same way, in a sequential loop on one
``httpx.Client``: no threads, no store. So genq's figure pays for the store on every
delivery and has T threads; the baseline pays for neither. A second baseline is a bare
Dramatiq actor on the same broker and worker (T threads) that signs and posts each body
from memory on one shared ``httpx.Client``: what a queue and threads cost before any
store.

A second genq figure is a backlog: N more deliveries to another endpoint, all due and
their messages gone, as after a receiver's outage; it runs from the dispatch sweep's start
until all succeeded. The sweep sends them in batches (``store.webhook_messages.BATCH``
a message), each claimed and recorded together and sent as one train.

All go to the simulator's sample receiver, in a process of its own as a customer's
receiver would be (``genq sim``, no added latency), in the same run; it checks each
signature with the ``standardwebhooks`` library, and the bench fails unless every hook
verified all N.

    python bench/webhooks.py [--deliveries N] [--threads T] [--database-url URL] [--redis-url URL]

Defaults: 500 deliveries, 16 threads, a fresh SQLite file and a private Redis in a
temporary directory. The last line printed is JSON.
"""

import argparse
import json
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import dramatiq
import httpx
from pydantic import SecretStr
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

sys.path.insert(0, str(Path(__file__).resolve().parent))

from stack import Simulator

from infra.brokers import make_broker
from infra.db import make_engine, migrate
from infra.redis_conn import ensure_embedded_redis, stop_embedded_redis
from producers import Producer
from schema.jobs import WebhookEventType
from schema.settings import Settings
from schema.tables import OutboxMessage, WebhookDelivery, WebhookEvent
from schema.webhooks import DeliveryStatus, EndpointCreate
from store import outbox, webhook_events
from store.tenants import create_tenant
from store.webhook_secrets import signing_secrets
from workers.actors import declare_actors
from workers.runtime import Runtime, build_runtime
from workers.webhooks.dispatch import dispatch_due
from workers.webhooks.signing import signed_headers

BARE_QUEUE = "bench.webhooks.bare"
EVENTS_PER_TRANSACTION = 100
POLL_INTERVAL_S = 0.05
TIMEOUT_S = 90.0
COUNTERS = ("received", "verified", "bad_signature", "unverified", "duplicates")
REPLY = (
    "Webhooks let a service tell another one that something happened, as it happens: the "
    "sender POSTs a small signed JSON body to a URL the receiver registered, and retries "
    "with backoff until it gets a 2xx answer or gives up."
)


def job_data(number: int) -> dict[str, Any]:
    """A finished chat job as its webhook shows it: about 1 kB of JSON."""
    finished = datetime(2025, 1, 1, tzinfo=UTC) + timedelta(seconds=number)
    message = {"role": "assistant", "content": REPLY}
    return {
        "object": "job",
        "id": f"job_bench{number:020d}",
        "status": "succeeded",
        "kind": "chat",
        "model": "openai/gpt-4o-mini",
        "route": "openai",
        "metadata": {"customer": "acme", "request_id": f"req-{number:08d}"},
        "webhook_url": None,
        "webhook_events": None,
        "output": {
            "text": REPLY,
            "finish_reason": "stop",
            "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
        },
        "usage": {"input_tokens": 24, "output_tokens": 52, "total_tokens": 76},
        "cost_usd": 0.0000348,
        "cached": False,
        "served_by": "openai/gpt-4o-mini",
        "progress": None,
        "deadline_at": (finished + timedelta(days=1)).isoformat(),
        "error": None,
        "attempts": 1,
        "created_at": (finished - timedelta(seconds=2)).isoformat(),
        "started_at": (finished - timedelta(seconds=1.5)).isoformat(),
        "finished_at": finished.isoformat(),
    }


def configure_hook(sim: Simulator, hook: str, secret: str) -> None:
    """Have the receiver's hook verify signatures made with ``secret``."""
    httpx.put(f"{sim.url}/_sim/hooks/{hook}", json={"secrets": [secret]}).raise_for_status()


def verified(sim: Simulator, hook: str) -> int:
    """How many requests the hook verified; prints its counters."""
    state = httpx.get(f"{sim.url}/_sim/hooks/{hook}").raise_for_status().json()
    print(f"hook {hook}: {json.dumps({name: state[name] for name in COUNTERS})}")
    return int(state["verified"])


def record_events(
    sessions: sessionmaker[Session], tenant_id: str, endpoint_id: str, url: str, count: int
) -> list[list[OutboxMessage]]:
    """Record ``count`` events for the endpoint; their outbox rows, one list a transaction."""
    batches = []
    for start in range(0, count, EVENTS_PER_TRANSACTION):
        with sessions.begin() as session:
            batches.append(
                [
                    row
                    for number in range(start, min(start + EVENTS_PER_TRANSACTION, count))
                    for row in webhook_events.record(
                        session,
                        tenant_id,
                        WebhookEventType.SUCCEEDED,
                        [webhook_events.Target(endpoint_id, url)],
                        job_data(number),
                    )
                ]
            )
    return batches


def signed_bodies(
    sessions: sessionmaker[Session], tenant_id: str, endpoint_id: str
) -> tuple[list[str], list[tuple[str, str]]]:
    """The endpoint's signing secrets, and the id and body of each of the tenant's events."""
    with sessions() as session:
        secrets = signing_secrets(session, tenant_id, endpoint_id)
        events = session.execute(
            select(WebhookEvent.id, WebhookEvent.body)
            .where(WebhookEvent.tenant_id == tenant_id)
            .order_by(WebhookEvent.id)
        )
        return secrets, [(event_id, body) for event_id, body in events]


def bench_httpx(url: str, secrets: list[str], events: list[tuple[str, str]]) -> float:
    """Deliveries per second of one sequential httpx loop posting the signed bodies."""
    with httpx.Client(timeout=15) as client:
        started = time.perf_counter()
        for event_id, body in events:
            headers = signed_headers(secrets, event_id, int(time.time()), body)
            client.post(url, content=body.encode(), headers=headers).raise_for_status()
        return len(events) / (time.perf_counter() - started)


def bench_dramatiq(
    broker: dramatiq.Broker, url: str, secrets: list[str], events: list[tuple[str, str]]
) -> float:
    """Deliveries per second of a bare Dramatiq actor signing and posting each body, from
    the first send until the last POST is answered; a worker must be consuming."""
    done = threading.Semaphore(0)

    with httpx.Client(timeout=15) as client:

        @dramatiq.actor(broker=broker, queue_name=BARE_QUEUE, max_retries=0)
        def post_event(number: int) -> None:
            event_id, body = events[number]
            headers = signed_headers(secrets, event_id, int(time.time()), body)
            client.post(url, content=body.encode(), headers=headers).raise_for_status()
            done.release()

        started = time.perf_counter()
        for number in range(len(events)):
            post_event.send(number)
        for _ in events:
            if not done.acquire(timeout=TIMEOUT_S):
                raise SystemExit("the bare Dramatiq actor did not post every event")
        return len(events) / (time.perf_counter() - started)


def bench_genq(runtime: Runtime, batches: list[list[OutboxMessage]], endpoint_id: str) -> float:
    """Deliveries per second from the first send until the store shows all succeeded."""
    started = time.perf_counter()
    for batch in batches:
        outbox.send(runtime.sessions, runtime.broker, batch)
    return wait_succeeded(runtime, endpoint_id, sum(len(batch) for batch in batches), started)


def bench_backlog(runtime: Runtime, endpoint_id: str, lost: list[OutboxMessage]) -> float:
    """Deliveries per second of a backlog: the endpoint's deliveries all due, dispatched an
    hour ago and their messages gone (a receiver back from an outage), from the dispatch
    sweep's start until all succeeded."""
    count = len(lost)
    with runtime.sessions.begin() as session:
        outbox.mark_sent(session, [row.id for row in lost])
        session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.endpoint_id == endpoint_id)
            .values(dispatched_at=datetime.now(UTC) - timedelta(hours=1))
        )
    started = time.perf_counter()
    dispatch_due(runtime.sessions, runtime.broker, batch_size=count)
    return wait_succeeded(runtime, endpoint_id, count, started)


def wait_succeeded(runtime: Runtime, endpoint_id: str, count: int, started: float) -> float:
    """Deliveries per second once the endpoint's ``count`` deliveries all succeeded."""
    query = (
        select(WebhookDelivery.status, func.count())
        .where(WebhookDelivery.endpoint_id == endpoint_id)
        .group_by(WebhookDelivery.status)
    )
    while True:
        with runtime.sessions() as session:
            statuses = {status: number for status, number in session.execute(query)}
        elapsed = time.perf_counter() - started
        if statuses.get(DeliveryStatus.SUCCEEDED, 0) == count:
            return count / elapsed
        if statuses.get(DeliveryStatus.FAILED) or elapsed > TIMEOUT_S:
            raise SystemExit(f"deliveries not all succeeded after {elapsed:.0f}s: {statuses}")
        time.sleep(POLL_INTERVAL_S)


def run(sim: Simulator, settings: Settings, count: int, threads: int) -> dict[str, Any]:
    """Set up the tenant and both hooks, run the baseline then genq; the JSON result."""
    engine = make_engine(settings.database_url_value)
    migrate(engine)
    producer = Producer(settings, engine=engine)
    runtime = build_runtime(settings, make_broker(settings, consumer=True), engine=engine)
    declare_actors(runtime)
    runtime.start()
    try:
        with producer.sessions.begin() as session:
            tenant_id = create_tenant(session, f"bench-{time.time_ns()}").tenant_id
        genq_hook, httpx_hook = f"genq-{time.time_ns()}", f"httpx-{time.time_ns()}"
        bare_hook = f"dramatiq-{time.time_ns()}"
        hook_url = f"{sim.url}/hooks/{genq_hook}"
        endpoint = producer.webhooks.create_endpoint(tenant_id, EndpointCreate(url=hook_url))
        assert endpoint.secret is not None  # shown on creation
        backlog_hook = f"backlog-{time.time_ns()}"

        batches = record_events(producer.sessions, tenant_id, endpoint.id, hook_url, count)
        print(f"recorded {count} events in {len(batches)} transactions")
        backlog_url = f"{sim.url}/hooks/{backlog_hook}"
        backlog = producer.webhooks.create_endpoint(tenant_id, EndpointCreate(url=backlog_url))
        assert backlog.secret is not None
        for hook, secret in (
            (genq_hook, endpoint.secret),
            (httpx_hook, endpoint.secret),
            (bare_hook, endpoint.secret),
            (backlog_hook, backlog.secret),
        ):
            configure_hook(sim, hook, secret)
        secrets, events = signed_bodies(producer.sessions, tenant_id, endpoint.id)
        recorded = record_events(producer.sessions, tenant_id, backlog.id, backlog_url, count)
        lost = [row for rows in recorded for row in rows]
        baseline_rate = bench_httpx(f"{sim.url}/hooks/{httpx_hook}", secrets, events)
        print(f"httpx loop: {baseline_rate:.1f} deliveries/s")

        worker = dramatiq.Worker(runtime.broker, worker_timeout=100, worker_threads=threads)
        worker.start()
        try:
            bare_rate = bench_dramatiq(
                runtime.broker, f"{sim.url}/hooks/{bare_hook}", secrets, events
            )
            print(f"bare Dramatiq actor: {bare_rate:.1f} deliveries/s")
            genq_rate = bench_genq(runtime, batches, endpoint.id)
            print(f"genq worker, fresh events: {genq_rate:.1f} deliveries/s")
            backlog_rate = bench_backlog(runtime, backlog.id, lost)
            print(f"genq worker, a backlog the sweep sends: {backlog_rate:.1f} deliveries/s")
        finally:
            worker.stop()
    finally:
        runtime.broker.close()
        runtime.close()
        producer.close()

    genq_verified = verified(sim, genq_hook)
    others = {
        "backlog": verified(sim, backlog_hook),
        "httpx": verified(sim, httpx_hook),
        "dramatiq": verified(sim, bare_hook),
    }
    if genq_verified != count or set(others.values()) != {count}:
        raise SystemExit(f"verified {genq_verified} (genq) and {others} of {count}")
    return {
        "bench": "webhooks",
        "deliveries": count,
        "threads": threads,
        "store": engine.url.get_backend_name(),
        "deliveries_per_s": round(genq_rate, 1),
        "baseline_per_s": round(baseline_rate, 1),
        "dramatiq_per_s": round(bare_rate, 1),
        "ratio_vs_httpx": round(genq_rate / baseline_rate, 3),
        "ratio_vs_dramatiq": round(genq_rate / bare_rate, 3),
        "backlog_per_s": round(backlog_rate, 1),
        "backlog_ratio_vs_httpx": round(backlog_rate / baseline_rate, 3),
        "verified": genq_verified,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deliveries", type=int, default=500)
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--database-url")
    parser.add_argument("--redis-url")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        var = Path(tmp)
        redis_url = args.redis_url or ensure_embedded_redis(var)
        settings = Settings(
            var_dir=var,
            database_url=SecretStr(args.database_url or f"sqlite:///{var / 'bench.db'}"),
            redis_url=SecretStr(redis_url),
            worker_threads=args.threads,
            webhook_max_in_flight=args.threads,
            webhook_allow_networks=["127.0.0.0/8"],
            _env_file=None,
        )
        sim = Simulator(0, var)
        try:
            result = run(sim, settings, args.deliveries, args.threads)
        finally:
            sim.stop()
            if not args.redis_url:
                stop_embedded_redis(var)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
