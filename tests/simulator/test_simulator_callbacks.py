"""The simulator's callback sender wakes at a job's end, not up to a watch period after."""

from simulator.callbacks import WATCH_EVERY_S, nap_s, tls
from simulator.jobs import Job


def job(created_at: float, duration_s: float) -> Job:
    return Job("j1", "fal", {}, created_at, duration_s, fails=False)


def test_a_pending_delivery_naps_a_watch_period_far_from_the_end() -> None:
    assert nap_s(job(created_at=0, duration_s=100), now=10) == WATCH_EVERY_S


def test_a_pending_delivery_wakes_at_the_end_when_it_comes_sooner() -> None:
    assert nap_s(job(created_at=0, duration_s=100), now=99.99) < WATCH_EVERY_S
    assert nap_s(job(created_at=0, duration_s=100), now=101) == 0


def test_every_delivery_shares_one_tls_context() -> None:
    assert tls() is tls()
