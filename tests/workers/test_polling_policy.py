"""The polling policy as pure functions: what each provider tells moves the next poll."""

import random
from datetime import timedelta

import pytest

from schema.tables import utcnow
from workers.execution.waiting import seen_started
from workers.polling import (
    JITTER,
    MAX_FRACTION,
    MIN_FRACTION,
    START_FRACTION,
    PollState,
    next_poll_in_s,
)
from workers.providers import AsyncState, PollResult
from workers.providers.replicate_predictions import logged_progress


def interval(**state: object) -> float:
    """The next interval for a state, with a seeded jitter."""
    return next_poll_in_s(PollState(**state), random.Random(0))  # type: ignore[arg-type]


def within_jitter(value: float, expected: float) -> bool:
    return expected * (1 - JITTER) <= value <= expected * (1 + JITTER)


def test_a_queued_job_is_polled_for_its_start_not_its_end() -> None:
    queued = interval(elapsed_s=0, expected_s=100, queued=True, queue_position=0)
    running = interval(elapsed_s=0, expected_s=100)

    assert within_jitter(queued, START_FRACTION * 100)
    assert within_jitter(running, MAX_FRACTION * 100)


def test_a_request_ahead_pushes_the_expected_start_out() -> None:
    first = interval(elapsed_s=0, expected_s=100, queued=True, queue_position=0)
    second = interval(elapsed_s=0, expected_s=100, queued=True, queue_position=1)

    assert within_jitter(second, 2 * START_FRACTION * 100)
    assert second > first


def test_a_start_later_than_expected_backs_off() -> None:
    waits = [interval(elapsed_s=t, expected_s=100, queued=True) for t in (5, 9.5, 20, 40)]

    assert within_jitter(waits[0], START_FRACTION * 100 - 5)
    assert within_jitter(waits[1], MIN_FRACTION * 100)
    assert waits[1] < waits[2] < waits[3]


def test_a_throttled_task_waits_at_least_the_providers_pace() -> None:
    throttled = interval(elapsed_s=9, expected_s=100, queued=True, hint_s=5)

    assert throttled >= 5 * (1 - JITTER)


def test_progress_extrapolates_the_end_from_the_seen_start() -> None:
    # Runway's 0.5 is 50 %: 30 s since it was seen started, so about 30 s are left.
    halfway = interval(elapsed_s=30, expected_s=100, progress=50)
    nearly = interval(elapsed_s=57, expected_s=100, progress=95)

    rounded_up = interval(elapsed_s=150, expected_s=100, progress=100)

    assert within_jitter(halfway, 15)
    assert within_jitter(nearly, MIN_FRACTION * 100)
    assert within_jitter(rounded_up, MIN_FRACTION * 100)


def test_without_progress_the_learned_duration_sets_the_aim() -> None:
    # Veo says nothing until done: a model learned to take 200 s is first polled later.
    short = interval(elapsed_s=0, expected_s=100)
    long = interval(elapsed_s=0, expected_s=200)

    assert within_jitter(short, MAX_FRACTION * 100)
    assert within_jitter(long, MAX_FRACTION * 200)


@pytest.mark.parametrize(
    ("logs", "progress"),
    [
        ("Using seed: 1\n 10%|#         | 5/50\n 20%|##        | 10/50\n", 20.0),
        ("step 3 of 8, 37.5 % done", 37.5),
        ("Using seed: 1\n", None),
        ("", None),
        (None, None),
        ("scaled by 250%", None),
    ],
)
def test_replicate_logs_give_the_last_percentage(logs: object, progress: float | None) -> None:
    assert logged_progress(logs) == progress


def answer(queued: bool, progress: float | None = None) -> PollResult:
    return PollResult("p1", AsyncState.RUNNING, None, 200, progress=progress, queued=queued)


def test_the_start_is_the_first_answer_out_of_the_queue() -> None:
    before = utcnow()
    earlier = before - timedelta(seconds=30)

    assert seen_started(answer(queued=True), None, earlier) is None
    assert seen_started(answer(queued=False), None, earlier) >= before  # type: ignore[operator]
    assert seen_started(answer(queued=False), earlier, earlier) == earlier


def test_a_job_first_seen_partly_done_started_that_share_of_its_expected_time_ago() -> None:
    before = utcnow()
    long_ago = before - timedelta(hours=1)

    started = seen_started(answer(queued=False, progress=30), None, long_ago, expected_s=100)
    submitted_later = seen_started(answer(queued=False, progress=30), None, before, 100)

    assert started is not None
    assert before - timedelta(seconds=30) <= started <= utcnow() - timedelta(seconds=30)
    assert submitted_later == before


def test_a_job_that_ended_unseen_has_no_seen_start() -> None:
    done = PollResult("p1", AsyncState.SUCCEEDED, None, 200, progress=100)

    assert seen_started(done, None, utcnow(), expected_s=100) is None
