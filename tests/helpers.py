"""Small helpers shared by tests."""

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, event

from schema.routes import Routes


@contextmanager
def listening(engine: Engine, **listeners: Callable[..., Any]) -> Iterator[None]:
    """The engine's events (``before_cursor_execute=hear``, say) heard while the block runs."""
    for name, listener in listeners.items():
        event.listen(engine, name, listener)
    try:
        yield
    finally:
        for name, listener in listeners.items():
            event.remove(engine, name, listener)


def override(routes: Routes, name: str, **changes: object) -> None:
    """Replace route ``name`` with a copy carrying ``changes`` (producer and worker share it)."""
    routes.by_name[name] = routes.by_name[name].model_copy(update=changes)


START = 1_700_000_000.0


class FakeClock:
    """Unix time that moves only when told to."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
