"""When to poll a long-running provider job next.

Polling every second wastes the provider's quota on a video that takes minutes;
polling every minute makes the customer wait for a video that is long done. The policy
spends polls where the job's next change is likely, using what each provider tells:

- A job that has not started (fal's ``IN_QUEUE`` with its ``queue_position``, Runway's
  ``PENDING``/``THROTTLED``, Replicate's ``starting``) is polled for its start, not its
  end: the expected start is ``START_FRACTION`` of the expected duration per request
  ahead, plus one for its own. The first poll goes straight there and later ones back off
  as past an end: a start seen late delays no customer, it only shifts the end estimate,
  which progress corrects and the learned duration, measured the same way, absorbs. Its
  queued time does not count against the expected duration: the caller counts
  ``elapsed_s`` from the answer that first showed it started (from submission where a
  provider shows no queue: OpenAI videos, Veo).
- With a progress figure (OpenAI videos' ``progress``, Runway's ``progress`` x 100,
  Replicate's percentage in its logs), the finish is extrapolated from the rate so far,
  and the next poll goes at half the estimated time left: the interval halves as the end
  nears, so the number of polls grows with the logarithm of the duration, and the job is
  seen done within about ``MIN_FRACTION`` of its expected length. A running job at 100 %
  (Runway rounds to hundredths) is about to end: it is polled at that floor.
- Without progress (Veo says nothing until done, fal's status has none), the same halving
  aims at the model's expected duration (learned as the running median of its finished
  jobs, else from the routes config).
- Past the expected end (or start) the guess was wrong, so the interval grows with the
  overrun: ``MIN_FRACTION`` of the expectation plus ``BACKOFF - 1`` times the time past
  it, so successive polls are spaced by a factor of ``BACKOFF``, up to ``MAX_FRACTION`` of
  the expectation and never beyond ``MAX_INTERVAL_S``.
- The provider's own hint (``openai-poll-after-ms``, Runway's pace for a throttled task)
  is a floor: it knows its queue.
- ±``JITTER`` spreads polls of jobs that started together.
- With provider callbacks on, the callback is the fast path (it wakes a poll within a
  second of the end) and polling only a safety net for a callback that never comes (the
  provider's retries ran out, genq's API was down, a misconfigured secret). So the first
  poll waits for ``CALLBACK_BACKSTOP`` times the expected duration, by when the callback
  of all but a late job has come, and later polls back off by ``BACKOFF`` (each waits
  half the time elapsed), at most ``CALLBACK_MAX_INTERVAL_S`` apart so a hard timeout or
  a deadline is still noticed. A job then costs one poll, the one its callback wakes.
"""

import random
from dataclasses import dataclass

MIN_FRACTION = 0.02
MAX_FRACTION = 0.25
BACKOFF = 1.5
MAX_INTERVAL_S = 60.0
MIN_INTERVAL_S = 0.01
JITTER = 0.1
DEFAULT_EXPECTED_S = 60.0
START_FRACTION = 0.1
"""Expected wait for a queued job's start, per request ahead and its own, as a fraction of
the expected duration."""
CALLBACK_BACKSTOP = 1.5
CALLBACK_MAX_INTERVAL_S = 600.0


@dataclass(frozen=True)
class PollState:
    """What is known about a provider job when deciding the next poll.

    ``elapsed_s`` counts from when the job was first seen started (while ``queued``, the
    time it has waited so far)."""

    elapsed_s: float
    expected_s: float | None
    progress: float | None = None
    hint_s: float | None = None
    queued: bool = False
    queue_position: int | None = None
    callbacks: bool = False


def next_poll_in_s(state: PollState, rng: random.Random | None = None) -> float:
    """Seconds until the next poll of a job in ``state``."""
    expected = state.expected_s or DEFAULT_EXPECTED_S
    floor = MIN_FRACTION * expected
    if state.queued:
        start = START_FRACTION * expected * (1 + (state.queue_position or 0))
        interval = _towards(state.elapsed_s, start, floor, share=1.0)
    elif state.progress is not None and state.progress > 0:
        remaining = state.elapsed_s * max(100 - state.progress, 0) / state.progress
        interval = max(floor, remaining / 2)
    else:
        interval = _towards(state.elapsed_s, expected, floor)
    interval = min(interval, MAX_FRACTION * expected, MAX_INTERVAL_S)
    if state.callbacks:
        backstop = CALLBACK_BACKSTOP * expected - state.elapsed_s
        interval = backstop if backstop > 0 else state.elapsed_s * (BACKOFF - 1)
        interval = min(interval, CALLBACK_MAX_INTERVAL_S)
    if state.hint_s is not None:
        interval = max(interval, state.hint_s)
    jitter = (rng or random).uniform(1 - JITTER, 1 + JITTER)
    return max(MIN_INTERVAL_S, interval * jitter)


def _towards(elapsed_s: float, target_s: float, floor_s: float, share: float = 0.5) -> float:
    """``share`` of the way to target_s, at least floor_s; past it, floor_s plus
    ``BACKOFF - 1`` times the overrun."""
    if elapsed_s < target_s:
        return max(floor_s, (target_s - elapsed_s) * share)
    return floor_s + (elapsed_s - target_s) * (BACKOFF - 1)
