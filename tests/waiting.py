"""Poll with a deadline instead of sleeping."""

from collections.abc import Callable
from typing import TypeVar

from genq.processes import wait_until

T = TypeVar("T")


def eventually(read: Callable[[], T], done: Callable[[T], bool], timeout_s: float = 20) -> T:
    """Return ``read()`` once ``done`` holds for it; fail after ``timeout_s``."""
    box: list[T] = []

    def check() -> bool:
        box[:] = [read()]
        return done(box[0])

    wait_until(check, timeout_s, "a condition")
    return box[0]
