"""Bench: how often genq polls a long provider job, and how late it sees it done.

A few hundred OpenAI video jobs run on the simulator, their durations drawn from the
realistic spread (lognormal, median 100 s, sigma 0.6, clamped to 20 s - 10 min). Each job
is polled, concurrently and independently, by genq's policy (``workers.polling``, with
sora-2's expected duration of 100 s, the progress and the ``openai-poll-after-ms`` hint) and
by three baselines: fixed 1 s polling, fixed 10 s polling, and the 1 s x1.5 up to 10 s
backoff of the usual guides. All four poll the same jobs in the same run, so they see the
same durations. Per policy: polls per job (GETs, the last one seeing ``completed``), and the
detection delay, from the simulator's ``finished_at`` to the answer that showed the job
completed, in seconds and as a fraction of the job's duration (median and p95).

Time is shortened: ``--time-scale 0.02`` runs 100 s of provider time in 2 s of wall time
(a 10 min job in 12 s). Every figure is in provider seconds. Policies choose intervals in
provider seconds and the bench sleeps that times the scale, counted from the previous poll's
send, so the loopback round trip, which is not scaled, does not stretch the intervals. It
does add to each delay: at 0.02 a millisecond of wall is 0.05 provider seconds, and an
answer comes a few ms after its poll was due (``poll_lateness_s``: about 0.2 s of provider
time at the median, 0.4 s at p95), a few thousandths of a typical job's duration and well
below the delays measured. Smaller scales inflate it.

Jobs are submitted evenly over ``--arrivals-s`` provider seconds rather than all at once:
each policy treats each job alone, so this changes no figure, but it keeps fixed 1 s polling
of hundreds of jobs within what one simulator process serves on a small machine
(``--arrivals-s 0`` submits them at once, and overloads it). Polls go over a few keep-alive
connections with a minimal HTTP/1.1 client, as httpx's async client spends more CPU per
request than the 1 s baseline leaves.

    python bench/polling.py [--jobs 300] [--time-scale 0.02] [--arrivals-s 2400] [--seed 7]

The last line printed is the JSON result; it takes about a minute.
"""

import argparse
import asyncio
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from genq.processes import free_port, wait_until
from workers.polling import PollState, next_poll_in_s

EXPECTED_S = 100.0
"""sora-2's expected_duration_s in schema/routes.toml."""
KEY = "sk-genq-bench"
CONNECTIONS = 16
SPREAD = {
    "duration_median_s": 100,
    "duration_sigma": 0.6,
    "duration_min_s": 20,
    "duration_max_s": 600,
}


@dataclass(frozen=True)
class Seen:
    """What a poller knows about its job when choosing the next interval."""

    polls: int
    elapsed_s: float
    progress: float
    hint_s: float | None


Policy = Callable[[Seen], float]


@dataclass
class Outcome:
    """One policy's polling of one job."""

    policy: str
    video_id: str
    polls: int
    seen_at: float


def genq_policy(rng: random.Random) -> Policy:
    """genq's policy, as the worker calls it."""
    return lambda seen: next_poll_in_s(
        PollState(seen.elapsed_s, EXPECTED_S, seen.progress, seen.hint_s), rng
    )


def fixed(interval_s: float) -> Policy:
    """Poll every interval_s."""
    return lambda seen: interval_s


def backoff(first_s: float, factor: float, cap_s: float) -> Policy:
    """Start at first_s, multiply by factor after each poll, up to cap_s."""
    return lambda seen: min(first_s * factor**seen.polls, cap_s)


def policies(seed: int) -> dict[str, Policy]:
    """genq's policy and the baselines, by name."""
    return {
        "genq": genq_policy(random.Random(seed)),
        "fixed_1s": fixed(1.0),
        "fixed_10s": fixed(10.0),
        "backoff_1s_x1.5_max_10s": backoff(1.0, 1.5, 10.0),
    }


class Client:
    """Keep-alive HTTP/1.1 to the simulator, enough for its JSON answers (Content-Length)."""

    def __init__(self, port: int, connections: int) -> None:
        self.port = port
        self.idle: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = (
            asyncio.Queue()
        )
        self.unopened = connections

    async def request(self, method: str, target: str, body: bytes = b"") -> tuple[dict, dict]:
        """The JSON answer and the lower-cased headers; raises unless 200."""
        if self.idle.empty() and self.unopened:
            self.unopened -= 1
            self.idle.put_nowait(await asyncio.open_connection("127.0.0.1", self.port))
        reader, writer = await self.idle.get()
        writer.write(
            f"{method} {target} HTTP/1.1\r\nHost: sim\r\nAuthorization: Bearer {KEY}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        headers = dict(line.lower().split(": ", 1) for line in head[1:] if line)
        data = await reader.readexactly(int(headers["content-length"]))
        self.idle.put_nowait((reader, writer))
        if head[0].split()[1] != "200":
            raise RuntimeError(f"{method} {target}: {head[0]} {data.decode(errors='replace')}")
        return json.loads(data), headers

    def close(self) -> None:
        """Close the idle connections."""
        while not self.idle.empty():
            self.idle.get_nowait()[1].close()


class Sim:
    """The simulator in a subprocess, configured for the bench."""

    def __init__(self, var: Path, config: dict) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "genq", "sim", "--port", str(self.port)],
            stdout=open(var / "sim.log", "wb"),  # noqa: SIM115
            stderr=subprocess.STDOUT,
        )
        wait_until(self._up, 30, "the simulator")
        httpx.post(f"{self.url}/_sim/config", json=config).raise_for_status()
        httpx.post(f"{self.url}/_sim/reset").raise_for_status()

    def _up(self) -> bool:
        try:
            return httpx.get(f"{self.url}/_sim/stats", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def jobs(self) -> dict[str, dict]:
        """Every job's timeline by id."""
        data = httpx.get(f"{self.url}/_sim/jobs", timeout=30).raise_for_status().json()["data"]
        return {job["id"]: job for job in data}

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait()


def hint_s(headers: dict, scale: float) -> float | None:
    """The poll-after hint in provider seconds (the simulator sends it in scaled wall ms)."""
    hint = headers.get("openai-poll-after-ms")
    return int(hint) / 1000 / scale if hint and hint.isdigit() else None


@dataclass
class Poller:
    """Submits videos and polls them on the simulator, in provider time."""

    client: Client
    scale: float
    lateness: list[float] = field(default_factory=list)
    """How late each poll's answer came after the poll was due, in wall seconds."""

    async def submit(self) -> tuple[str, float, Seen]:
        """A new video's id, when it was submitted, and what its creation answer showed."""
        body = {"model": "sora-2", "prompt": "a lighthouse at dusk", "seconds": "8"}
        submitted = time.time()
        video, headers = await self.client.request("POST", "/v1/videos", json.dumps(body).encode())
        elapsed_s = (time.time() - submitted) / self.scale
        seen = Seen(0, elapsed_s, float(video["progress"]), hint_s(headers, self.scale))
        return video["id"], submitted, seen

    async def poll(
        self, name: str, policy: Policy, video_id: str, submitted: float, first: Seen
    ) -> Outcome:
        """Poll video_id as policy says until it is completed."""
        seen, sent = first, submitted
        while True:
            due = sent + policy(seen) * self.scale
            await asyncio.sleep(due - time.time())
            sent = time.time()
            video, headers = await self.client.request("GET", f"/v1/videos/{video_id}")
            received = time.time()
            self.lateness.append(received - due)
            if video["status"] == "completed":
                return Outcome(name, video_id, seen.polls + 1, received)
            if video["status"] == "failed":
                raise RuntimeError(f"video {video_id} failed: {video['error']}")
            elapsed_s = (received - submitted) / self.scale
            progress = float(video["progress"])
            seen = Seen(seen.polls + 1, elapsed_s, progress, hint_s(headers, self.scale))


async def run(port: int, args: argparse.Namespace) -> tuple[list[Outcome], list[float]]:
    """Submit the jobs evenly over the arrival window, each polled by every policy."""
    poller = Poller(Client(port, CONNECTIONS), args.time_scale)
    chosen = policies(args.seed)
    gap = args.arrivals_s * args.time_scale / args.jobs
    started = time.time()
    try:
        async with asyncio.TaskGroup() as group:
            tasks = []
            for i in range(args.jobs):
                await asyncio.sleep(started + i * gap - time.time())
                video_id, submitted, first = await poller.submit()
                tasks += [
                    group.create_task(poller.poll(name, policy, video_id, submitted, first))
                    for name, policy in chosen.items()
                ]
            print(f"submitted {args.jobs} jobs in {time.time() - started:.0f}s", file=sys.stderr)
    finally:
        poller.client.close()
    return [task.result() for task in tasks], poller.lateness


def percentile(values: list[float], q: int) -> float:
    """The q-th percentile of values."""
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def figures(outcomes: list[Outcome], jobs: dict[str, dict], scale: float) -> dict:
    """Polls per job and detection delay of one policy, in provider seconds."""
    polls = [o.polls for o in outcomes]
    waits = {o.video_id: o.seen_at - jobs[o.video_id]["finished_at"] for o in outcomes}
    delays = [wait / scale for wait in waits.values()]
    fractions = [wait / jobs[video_id]["duration_s"] for video_id, wait in waits.items()]
    return {
        "polls_per_job": round(statistics.fmean(polls), 2),
        "polls_per_job_median": statistics.median(polls),
        "median_delay_s": round(statistics.median(delays), 2),
        "p95_delay_s": round(percentile(delays, 95), 2),
        "median_delay_fraction": round(statistics.median(fractions), 4),
        "p95_delay_fraction": round(percentile(fractions, 95), 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=300)
    parser.add_argument("--time-scale", type=float, default=0.02)
    parser.add_argument(
        "--arrivals-s", type=float, default=2400.0, help="provider seconds to submit over"
    )
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    started = time.monotonic()
    config = {**SPREAD, "time_scale": args.time_scale, "seed": args.seed, "rpm_limit": 1_000_000}
    with tempfile.TemporaryDirectory() as tmp:
        sim = Sim(Path(tmp), config)
        try:
            outcomes, lateness = asyncio.run(run(sim.port, args))
            jobs = sim.jobs()
        finally:
            sim.stop()
    results = {
        name: figures([o for o in outcomes if o.policy == name], jobs, args.time_scale)
        for name in policies(args.seed)
    }
    per_job_1s = results["fixed_1s"]["polls_per_job"]
    for result in results.values():
        result["polls_ratio_vs_fixed_1s"] = round(result["polls_per_job"] / per_job_1s, 4)
    genq = results.pop("genq")
    print(
        json.dumps(
            {
                "bench": "polling",
                "jobs": args.jobs,
                "time_scale": args.time_scale,
                "arrivals_s": args.arrivals_s,
                "expected_s": EXPECTED_S,
                **genq,
                "baselines": results,
                "poll_lateness_s": {
                    "median": round(statistics.median(lateness) / args.time_scale, 3),
                    "p95": round(percentile(lateness, 95) / args.time_scale, 3),
                },
                "seconds": round(time.monotonic() - started, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
