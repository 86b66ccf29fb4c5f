"""Bounding a whole exchange, not each read: a request past its deadline has its sockets
shut down, which wakes the thread blocked on them.

The network streams note their sockets in the calling thread's exchange on every read and
write (kept-alive connections included), and one watchdog thread per process keeps the
deadlines, rather than a timer thread started for every request.
"""

import contextlib
import heapq
import itertools
import socket
import threading
import time
from collections.abc import Iterator


class Exchange:
    """The sockets one request touched, for the watchdog to shut down until the request
    is ``finish``ed (before its connection goes back to the pool for another request)."""

    def __init__(self) -> None:
        self.sockets: list[socket.socket] = []
        self.finished = False
        self._lock = threading.Lock()

    def finish(self) -> None:
        with self._lock:
            self.finished = True

    def note(self, sock: socket.socket) -> None:
        with self._lock:
            if sock not in self.sockets:
                self.sockets.append(sock)

    def cut(self) -> None:
        with self._lock:
            for sock in [] if self.finished else self.sockets:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)


_current = threading.local()


def note(sock: socket.socket) -> None:
    """Add ``sock`` to this thread's exchange, if one is under way."""
    found = getattr(_current, "exchange", None)
    if found is not None:
        found.note(sock)


class Watchdog:
    """Cuts each exchange still under way at its deadline."""

    def __init__(self) -> None:
        self._deadlines: list[tuple[float, int, Exchange]] = []
        self._live: set[int] = set()
        self._order = itertools.count()
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None
        self._stopping = False

    @contextlib.contextmanager
    def exchange(self, timeout_s: float) -> Iterator[Exchange]:
        """Collect the sockets this thread reads and writes until the block ends, and cut
        them if it has not ended within ``timeout_s``."""
        current = _current.exchange = Exchange()
        number = next(self._order)
        with self._wake:
            self._start()
            self._live.add(number)
            heapq.heappush(self._deadlines, (time.monotonic() + timeout_s, number, current))
            self._wake.notify()
        try:
            yield current
        finally:
            current.finish()
            _current.exchange = None
            with self._wake:
                self._live.discard(number)

    def close(self) -> None:
        with self._wake:
            self._stopping = True
            self._wake.notify()
        if self._thread is not None:
            self._thread.join()

    def _start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._watch, name="webhook-watchdog", daemon=True
            )
            self._thread.start()

    def _watch(self) -> None:
        while True:
            with self._wake:
                due = self._next_due()
                while due is None and not self._stopping:
                    self._wake.wait(self._wait_s())
                    due = self._next_due()
                if due is None:
                    return
            due.cut()

    def _next_due(self) -> Exchange | None:
        """Drop finished exchanges from the front; pop and return one past its deadline."""
        while self._deadlines:
            deadline, number, exchange = self._deadlines[0]
            if number not in self._live:
                heapq.heappop(self._deadlines)
            elif deadline <= time.monotonic():
                heapq.heappop(self._deadlines)
                self._live.discard(number)
                return exchange
            else:
                return None
        return None

    def _wait_s(self) -> float | None:
        return max(0.0, self._deadlines[0][0] - time.monotonic()) if self._deadlines else None
