"""Bench: how often genq polls a long provider job, and how late it sees it done, per protocol.

Simulated video jobs run on each async protocol the simulator speaks (``openai-videos``,
``replicate-predictions``, ``google-veo``, ``fal-queue``, ``runway-tasks``; ``--protocols``
picks some), their durations drawn from the realistic spread (lognormal, median 100 s,
sigma 0.6, clamped to 20 s - 10 min; the first tenth queued). Each job is polled,
concurrently and independently, by genq's policy (``workers.polling``, fed what the protocol
tells, as genq's adapters read it: OpenAI's progress and ``openai-poll-after-ms``, Replicate's
``starting`` and the percentage in its logs, fal's ``IN_QUEUE`` and ``queue_position``,
Runway's ``PENDING``/``THROTTLED`` and progress, nothing from Veo until done) and by fixed 1 s
polling; OpenAI videos also by fixed 10 s and the 1 s x1.5 up to 10 s backoff of the usual
guides, the figures today's keys report. genq's expected duration is learned as genq learns
it (``workers.durations``: the median of the protocol's last 101 finished jobs, counted from
the answer that first showed each started, once there are 5), from ``EXPECTED_S`` before.

Callbacks: fal and Replicate jobs are submitted with a callback (``?fal_webhook=``;
``webhook`` with ``webhook_events_filter: ["completed"]``) to a small receiver in the bench
(``bench/poll_callbacks.py``), which verifies each callback's signature as genq does; a
verified callback makes its job's ``callbacks`` poller poll once at once, as genq's design
does. Meanwhile that poller runs genq's sparse backstop (``PollState.callbacks``). It polls
over connections of its own (``CALLBACK_CONNECTIONS``). The other policies poll the same
jobs and ignore the callbacks.

Per protocol and policy: polls per job (status reads, the last one seeing the job done), and
the detection delay from the simulator's ``finished_at`` to the answer that showed the job
done, in seconds and as a fraction of the job's duration (median and p95). Each protocol's
figures carry ``meets_target``: without callbacks at most 0.1x the polls of fixed 1 s at a
median delay of at most 2 % of the duration; with callbacks a median delay under 1 s and at
most 2 polls per job.

Time is shortened: ``--time-scale 0.02`` runs 100 s of provider time in 2 s of wall time.
Every figure is in provider seconds. Policies choose intervals in provider seconds and the
bench sleeps that times the scale, counted from the previous poll's send; the loopback round
trip, which is not scaled, adds to each delay (``poll_lateness_s``, in provider seconds).
Jobs are submitted evenly over ``--arrivals-s`` provider seconds, each round one job per
protocol, which keeps fixed 1 s polling of all of them within what one simulator process
serves on a small machine; ``--jobs`` is per protocol, 80 by default (300 before there were
five protocols) so the run stays under about two minutes here.

    python bench/polling.py [--jobs 80] [--time-scale 0.02] [--arrivals-s 3200] [--seed 7]
        [--protocols openai-videos,fal-queue,...]

The last line printed is the JSON result.
"""

import argparse
import asyncio
import contextlib
import json
import random
import statistics
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from poll_callbacks import Receiver
from poll_wire import WIRES, Client, OpenAIVideos, Sim, Status, Wire

from workers.polling import PollState, next_poll_in_s

EXPECTED_S = 100.0
"""The expected_duration_s every model starts from, before its durations are learned."""
CONNECTIONS = 16
CALLBACK_CONNECTIONS = 4
"""The callbacks pollers' own: in genq a callback's poll is a message of its own, not one
queued behind the baselines' polls on the bench's shared connections."""
SPREAD = {
    "duration_median_s": 100,
    "duration_sigma": 0.6,
    "duration_min_s": 20,
    "duration_max_s": 600,
}
DEFAULT = OpenAIVideos.name


@dataclass(frozen=True)
class Seen:
    """What a poller knows about its job when choosing the next interval."""

    polls: int
    elapsed_s: float
    """Since the job was first seen started; while queued, since it was submitted."""
    expected_s: float
    status: Status


Policy = Callable[[Seen], float]


@dataclass
class Outcome:
    """One policy's polling of one job."""

    protocol: str
    policy: str
    job_id: str
    polls: int
    seen_at: float


@dataclass
class Learned:
    """A protocol's learned duration, as ``workers.durations`` keeps it."""

    samples: deque[float] = field(default_factory=lambda: deque(maxlen=101))

    def expected_s(self) -> float:
        return statistics.median(self.samples) if len(self.samples) >= 5 else EXPECTED_S


def genq_policy(rng: random.Random, callbacks: bool = False) -> Policy:
    """genq's policy, as the worker calls it (with ``callbacks``, its sparse backstop)."""
    return lambda seen: next_poll_in_s(
        PollState(
            seen.elapsed_s,
            seen.expected_s,
            seen.status.progress,
            seen.status.hint_s,
            seen.status.queued,
            seen.status.queue_position,
            callbacks,
        ),
        rng,
    )


def fixed(interval_s: float) -> Policy:
    """Poll every interval_s."""
    return lambda seen: interval_s


def backoff(first_s: float, factor: float, cap_s: float) -> Policy:
    """Start at first_s, multiply by factor after each poll, up to cap_s."""
    return lambda seen: min(first_s * factor**seen.polls, cap_s)


def policies(seed: int, wire: type[Wire]) -> dict[str, Policy]:
    """genq's policy and the baselines for a protocol, by name."""
    chosen = {"genq": genq_policy(random.Random(seed)), "fixed_1s": fixed(1.0)}
    if wire is OpenAIVideos:
        chosen |= {"fixed_10s": fixed(10.0), "backoff_1s_x1.5_max_10s": backoff(1.0, 1.5, 10.0)}
    if wire.callbacks:
        chosen["callbacks"] = genq_policy(random.Random(seed), callbacks=True)
    return chosen


@dataclass
class Poller:
    """Polls jobs in provider time, each policy on its own."""

    scale: float
    learned: dict[str, Learned] = field(default_factory=dict)
    lateness: list[float] = field(default_factory=list)
    """How late each scheduled poll's answer came after it was due, in wall seconds."""

    async def poll(
        self,
        wire: Wire,
        name: str,
        policy: Policy,
        job: tuple[str, float, Status],
        callback: asyncio.Event | None,
    ) -> Outcome:
        """Poll a job (id, submitted, first status) as policy says until it is done; a
        callback, when given and set, makes the next poll now."""
        job_id, submitted, status = job
        learned = self.learned.setdefault(wire.name, Learned())
        started = None if status.queued else submitted
        polls, sent, received = 0, submitted, submitted
        while True:
            elapsed_s = (received - (started or submitted)) / self.scale
            interval_s = policy(Seen(polls, elapsed_s, learned.expected_s(), status))
            due = sent + interval_s * self.scale
            if callback is None:
                await asyncio.sleep(due - time.time())
            else:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(callback.wait(), due - time.time())
            early = callback is not None and callback.is_set()
            sent = time.time()
            status = await wire.poll(job_id)
            received, polls = time.time(), polls + 1
            if not early:
                self.lateness.append(received - due)
            if status.done:
                if name == "genq":
                    learned.samples.append((received - (started or submitted)) / self.scale)
                return Outcome(wire.name, name, job_id, polls, received)
            if started is None and not status.queued:  # as workers.execution.waiting sees it
                ran_s = (status.progress or 0.0) / 100 * learned.expected_s()
                started = max(received - ran_s * self.scale, submitted)


def chosen_wires(client: Client, args: argparse.Namespace) -> list[Wire]:
    """The protocols asked for."""
    names = args.protocols.split(",")
    return [wire(client, args.time_scale) for wire in WIRES if wire.name in names]


async def run(sim: Sim, args: argparse.Namespace) -> tuple[list[Outcome], Poller, Receiver]:
    """Submit the jobs evenly over the arrival window, each polled by every policy."""
    client, own = Client(sim.port, CONNECTIONS), Client(sim.port, CALLBACK_CONNECTIONS)
    poller = Poller(args.time_scale)
    receiver = Receiver(sim.jwks(), sim.replicate_secret())
    await receiver.start()
    wires = chosen_wires(client, args)
    called = {wire.name: type(wire)(own, args.time_scale) for wire in wires if wire.callbacks}
    gap = args.arrivals_s * args.time_scale / args.jobs
    started = time.time()
    try:
        async with asyncio.TaskGroup() as group:
            tasks = []
            for i in range(args.jobs):
                await asyncio.sleep(started + i * gap - time.time())
                for wire in wires:
                    submitted = time.time()
                    job_id, first = await wire.submit(receiver.url if wire.callbacks else None)
                    job = (job_id, submitted, first)
                    for name, policy in policies(args.seed + i, type(wire)).items():
                        on_call = name == "callbacks"
                        by = called[wire.name] if on_call else wire
                        callback = receiver.arrived(job_id) if on_call else None
                        coroutine = poller.poll(by, name, policy, job, callback)
                        tasks.append(group.create_task(coroutine))
            print(
                f"submitted {args.jobs} jobs each in {time.time() - started:.0f}s", file=sys.stderr
            )
    finally:
        client.close()
        own.close()
        receiver.close()
    return [task.result() for task in tasks], poller, receiver


def percentile(values: list[float], q: int) -> float:
    """The q-th percentile of values."""
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def figures(outcomes: list[Outcome], jobs: dict[str, dict], scale: float) -> dict:
    """Polls per job and detection delay of one policy on one protocol, in provider seconds."""
    polls = [o.polls for o in outcomes]
    waits = {o.job_id: o.seen_at - jobs[o.job_id]["finished_at"] for o in outcomes}
    delays = [wait / scale for wait in waits.values()]
    fractions = [wait / jobs[job_id]["duration_s"] for job_id, wait in waits.items()]
    return {
        "polls_per_job": round(statistics.fmean(polls), 2),
        "polls_per_job_median": statistics.median(polls),
        "median_delay_s": round(statistics.median(delays), 2),
        "p95_delay_s": round(percentile(delays, 95), 2),
        "median_delay_fraction": round(statistics.median(fractions), 4),
        "p95_delay_fraction": round(percentile(fractions, 95), 4),
    }


def by_protocol(outcomes: list[Outcome], jobs: dict[str, dict], scale: float) -> dict:
    """Every policy's figures per protocol, ratios against fixed 1 s, targets checked."""
    results: dict[str, dict] = {}
    for o in outcomes:
        results.setdefault(o.protocol, {}).setdefault(o.policy, []).append(o)
    protocols = {}
    for protocol, runs in results.items():
        named = {policy: figures(runs[policy], jobs, scale) for policy in runs}
        per_job_1s = named["fixed_1s"]["polls_per_job"]
        for result in named.values():
            result["polls_ratio_vs_fixed_1s"] = round(result["polls_per_job"] / per_job_1s, 4)
        genq = named["genq"]
        genq["meets_target"] = (
            genq["polls_ratio_vs_fixed_1s"] <= 0.1 and genq["median_delay_fraction"] <= 0.02
        )
        if callbacks := named.get("callbacks"):
            callbacks["meets_target"] = (
                callbacks["median_delay_s"] < 1 and callbacks["polls_per_job"] <= 2
            )
        protocols[protocol] = named
    return protocols


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=80, help="jobs per protocol")
    parser.add_argument("--time-scale", type=float, default=0.02)
    parser.add_argument(
        "--arrivals-s", type=float, default=3200.0, help="provider seconds to submit over"
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--protocols", default=",".join(wire.name for wire in WIRES))
    args = parser.parse_args()
    if DEFAULT not in args.protocols.split(","):
        parser.error(f"--protocols must include {DEFAULT}, whose figures are the top-level keys")

    started = time.monotonic()
    config = {**SPREAD, "time_scale": args.time_scale, "seed": args.seed, "rpm_limit": 1_000_000}
    with tempfile.TemporaryDirectory() as tmp:
        sim = Sim(Path(tmp), config)
        try:
            outcomes, poller, receiver = asyncio.run(run(sim, args))
            jobs = sim.jobs()
        finally:
            sim.stop()
    results = by_protocol(outcomes, jobs, args.time_scale)
    protocols = {name: {**named.pop("genq"), **named} for name, named in results.items()}
    baselines = results[DEFAULT]  # today's keys: OpenAI videos' genq, and every baseline
    genq = {key: protocols[DEFAULT][key] for key in protocols[DEFAULT] if key not in baselines}
    protocols[DEFAULT] = {**genq, "fixed_1s": baselines["fixed_1s"]}
    genq = {key: value for key, value in genq.items() if key != "meets_target"}
    print(
        json.dumps(
            {
                "bench": "polling",
                "jobs": args.jobs,
                "time_scale": args.time_scale,
                "arrivals_s": args.arrivals_s,
                "expected_s": EXPECTED_S,
                **genq,
                "baselines": baselines,
                "protocols": protocols,
                "callbacks_received": {"verified": receiver.verified, "refused": receiver.refused},
                "poll_lateness_s": {
                    "median": round(statistics.median(poller.lateness) / args.time_scale, 3),
                    "p95": round(percentile(poller.lateness, 95) / args.time_scale, 3),
                },
                "seconds": round(time.monotonic() - started, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
