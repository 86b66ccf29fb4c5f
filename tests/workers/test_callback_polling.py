"""The polling policy with provider callbacks on: a sparse backstop, not the fast path."""

import random

from workers.polling import CALLBACK_MAX_INTERVAL_S, JITTER, PollState, next_poll_in_s


def backstop(elapsed_s: float, expected_s: float = 100.0, **fields: object) -> float:
    state = PollState(elapsed_s, expected_s, callbacks=True, **fields)  # type: ignore[arg-type]
    return next_poll_in_s(state, random.Random(7))


def test_the_first_poll_waits_for_half_again_the_expected_duration() -> None:
    first = backstop(0)

    assert 150 * (1 - JITTER) <= first <= 150 * (1 + JITTER)
    assert first > 5 * next_poll_in_s(PollState(0, 100.0), random.Random(7))


def test_progress_near_the_end_does_not_make_it_dense() -> None:
    assert backstop(90, progress=95) > 50


def test_past_the_backstop_polls_back_off_up_to_a_cap() -> None:
    late = [backstop(t) for t in (150, 300, 600)]

    assert late == sorted(late)
    assert late[0] >= 75 * (1 - JITTER)
    assert backstop(10_000) <= CALLBACK_MAX_INTERVAL_S * (1 + JITTER)


def test_the_providers_hint_is_still_a_floor() -> None:
    assert backstop(150, hint_s=200) >= 200 * (1 - JITTER)
