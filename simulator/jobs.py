"""Async jobs (videos, predictions): a timeline fixed at creation, read at any instant.

A job is queued for its first tenth, then running, then succeeded or failed
at created_at + duration_s, unless canceled before. Nothing runs in the
background: each read computes the phase from the clock, so the moment a
job completed is exact and known.
"""

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from starlette.datastructures import State

from simulator.durations import job_duration

QUEUED_FRACTION = 0.1


class Phase(StrEnum):
    """Where a job is in its life, in the simulator's words; protocols rename them."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"


FINAL = frozenset({Phase.SUCCEEDED, Phase.FAILED, Phase.CANCELED})


@dataclass
class Job:
    """One async job's timeline, what it was asked, and how it was polled."""

    id: str
    kind: str
    params: dict[str, Any]
    created_at: float
    duration_s: float
    fails: bool
    canceled_at: float | None = None
    deleted_at: float | None = None
    """When the client deleted the job's resource, which its API then no longer shows."""
    polls: int = 0
    observed_at: float | None = None

    @property
    def started_at(self) -> float:
        """When the job leaves the queue."""
        return self.created_at + self.duration_s * QUEUED_FRACTION

    @property
    def finishes_at(self) -> float:
        """When the job completes unless canceled before."""
        return self.created_at + self.duration_s

    def phase(self, now: float) -> Phase:
        """The job's phase at the instant now."""
        if self.canceled_at is not None and now >= self.canceled_at:
            return Phase.CANCELED
        if now >= self.finishes_at:
            return Phase.FAILED if self.fails else Phase.SUCCEEDED
        if now >= self.started_at:
            return Phase.RUNNING
        return Phase.QUEUED

    def progress(self, now: float) -> float:
        """The fraction of the duration elapsed at now, from 0 to 1."""
        if self.duration_s <= 0:
            return 1.0
        return min(max((now - self.created_at) / self.duration_s, 0.0), 1.0)

    def finished_at(self, now: float) -> float | None:
        """When the job reached its final phase, or None if it has not yet."""
        phase = self.phase(now)
        if phase is Phase.CANCELED:
            return self.canceled_at
        return self.finishes_at if phase in FINAL else None

    def cancel(self, now: float) -> None:
        """Stop the job at now, unless it already finished."""
        if self.phase(now) not in FINAL:
            self.canceled_at = now

    def observe(self, now: float) -> None:
        """Count a client's poll, noting the first one to see the job finished."""
        self.polls += 1
        if self.observed_at is None and self.phase(now) in FINAL:
            self.observed_at = now

    def describe(self, now: float) -> dict[str, Any]:
        """The timeline as JSON-ready data, for GET /_sim/jobs/{id}."""
        return {
            "id": self.id,
            "kind": self.kind,
            "status": self.phase(now),
            "outcome": Phase.FAILED if self.fails else Phase.SUCCEEDED,
            "created_at": self.created_at,
            "started_at": self.started_at,
            "duration_s": self.duration_s,
            "finishes_at": self.finishes_at,
            "finished_at": self.finished_at(now),
            "canceled_at": self.canceled_at,
            "deleted_at": self.deleted_at,
            "polls": self.polls,
            "observed_at": self.observed_at,
        }


def start_job(state: State, job_id: str, kind: str, params: dict[str, Any], fails: bool) -> Job:
    """Create and register a job starting now, its duration drawn from the app's config."""
    duration = job_duration(state.config, state.job_rng)
    job = Job(job_id, kind, params, state.clock(), duration, fails)
    state.jobs[job_id] = job
    return job
