"""When to poll a long-running provider job next.

Polling every second wastes the provider's quota on a video that takes minutes;
polling every minute makes the customer wait for a video that is long done. The policy
spends polls where the end is likely:

- With a progress figure (OpenAI videos report ``progress``), the finish is
  extrapolated from the rate so far, and the next poll goes at half the estimated time
  left: the interval halves as the end nears, so the number of polls grows with the
  logarithm of the duration, and the job is seen done within about ``MIN_FRACTION`` of
  its expected length.
- Without progress, the same halving aims at the model's expected duration (learned as
  the running median of its finished jobs, else from the routes config).
- Past the expected end the guess was wrong, so the interval grows with the overrun:
  ``MIN_FRACTION`` of the expectation plus ``BACKOFF - 1`` times the time past it, so
  successive polls are spaced by a factor of ``BACKOFF``, up to ``MAX_FRACTION`` of
  the expectation and never beyond ``MAX_INTERVAL_S``.
- The provider's own hint (``openai-poll-after-ms``) is a floor: it knows its queue.
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
CALLBACK_BACKSTOP = 1.5
CALLBACK_MAX_INTERVAL_S = 600.0


@dataclass(frozen=True)
class PollState:
    """What is known about a provider job when deciding the next poll."""

    elapsed_s: float
    expected_s: float | None
    progress: float | None = None
    hint_s: float | None = None
    callbacks: bool = False


def next_poll_in_s(state: PollState, rng: random.Random | None = None) -> float:
    """Seconds until the next poll of a job in ``state``."""
    expected = state.expected_s or DEFAULT_EXPECTED_S
    floor = MIN_FRACTION * expected
    if state.progress is not None and 0 < state.progress < 100:
        remaining = state.elapsed_s * (100 - state.progress) / state.progress
        interval = max(floor, remaining / 2)
    elif state.elapsed_s < expected:
        interval = max(floor, (expected - state.elapsed_s) / 2)
    else:
        interval = floor + (state.elapsed_s - expected) * (BACKOFF - 1)
    interval = min(interval, MAX_FRACTION * expected, MAX_INTERVAL_S)
    if state.callbacks:
        backstop = CALLBACK_BACKSTOP * expected - state.elapsed_s
        interval = backstop if backstop > 0 else state.elapsed_s * (BACKOFF - 1)
        interval = min(interval, CALLBACK_MAX_INTERVAL_S)
    if state.hint_s is not None:
        interval = max(interval, state.hint_s)
    jitter = (rng or random).uniform(1 - JITTER, 1 + JITTER)
    return max(MIN_INTERVAL_S, interval * jitter)
