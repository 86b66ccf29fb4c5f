"""Bench: CPU per provider call on an event loop, genq's client against httpx's own.

N OpenAI chat calls go through genq's real adapter (``OpenAIChat.run_async``) on one
asyncio loop, C at a time, on one client of C connections as on the worker's call loop,
against the simulator in its own process. The same calls run twice in one process,
alternating R rounds each: on ``make_async_client`` (kept connections on asyncio's own
transports) and on an ``httpx.AsyncClient`` with the same options and httpx's default
transport (httpcore's pool through AnyIO), the baseline. CPU is this process's
user and system time over each round, after a warm-up that opens every connection.

    python bench/provider_calls.py [--calls 2000] [--concurrency 64] [--rounds 3]
        [--latency-ms 20]

The last line printed is JSON; ``cpu_ratio_vs_httpx`` below 1 means genq's client spends
less CPU per call.
"""

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from stack import Simulator

from schema.routes import load_routes
from workers.providers import (
    CallAdapter,
    adapter_for,
    client_options,
    make_async_client,
    make_client,
)

MODEL = "gpt-4o-mini"
INPUT = {"messages": [{"role": "user", "content": "Say something about queues. " * 8}]}

MakeClient = Callable[[int], httpx.AsyncClient]


def cpu_s() -> float:
    times = os.times()
    return times.user + times.system


async def calls_cpu_ms(
    adapter: CallAdapter, make: MakeClient, calls: int, concurrency: int
) -> float:
    """CPU milliseconds per call for ``calls`` calls, ``concurrency`` at a time."""
    client = make(concurrency)
    gate = asyncio.Semaphore(concurrency)

    async def one() -> None:
        async with gate:
            await adapter.run_async(client, MODEL, INPUT)

    await asyncio.gather(*(one() for _ in range(concurrency)))
    started = cpu_s()
    await asyncio.gather(*(one() for _ in range(calls)))
    spent = cpu_s() - started
    await client.aclose()
    return spent / calls * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="genq-bench-") as temp:
        var = Path(temp)
        sim = Simulator(args.latency_ms, var)
        try:
            routes_file = var / "routes.toml"
            default = Path(__file__).resolve().parent.parent / "schema" / "routes.toml"
            routes_file.write_text(default.read_text().replace("http://127.0.0.1:8900", sim.url))
            route = load_routes(routes_file).by_name["openai"]
            os.environ.setdefault(route.api_key_env or "OPENAI_API_KEY", "sk-bench")
            adapter: CallAdapter = adapter_for(route, make_client(route, 1))  # type: ignore[assignment]
            makers: dict[str, MakeClient] = {
                "genq": lambda size: make_async_client(route, size),
                "httpx": lambda size: httpx.AsyncClient(**client_options(route, size)),
            }
            figures: dict[str, list[float]] = {name: [] for name in makers}
            for _ in range(args.rounds):
                for name, make in makers.items():
                    run = calls_cpu_ms(adapter, make, args.calls, args.concurrency)
                    figures[name].append(asyncio.run(run))
        finally:
            sim.stop()
    genq, baseline = (statistics.median(figures[name]) for name in ("genq", "httpx"))
    print(
        f"rounds: {json.dumps({name: [round(f, 3) for f in fs] for name, fs in figures.items()})}"
    )
    result = {
        "bench": "provider_calls",
        "calls": args.calls,
        "concurrency": args.concurrency,
        "latency_ms": args.latency_ms,
        "cpu_ms_per_call": round(genq, 3),
        "httpx_cpu_ms_per_call": round(baseline, 3),
        "cpu_ratio_vs_httpx": round(genq / baseline, 3),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
