"""Provider calls in flight on one event loop per worker process.

A worker thread admits and claims a job, hands its provider call to the loop and returns,
so Dramatiq acknowledges the message: from then on the job's row (running, leased, its
attempt recorded) is what says the call is owed, and a process that dies mid-call leaves
its leases to lapse and the sweep to run those jobs again. Thousands of calls wait on
sockets on one loop rather than on a thread each; what follows a call (the bookkeeping in
Redis and the commit, both synchronous and short) runs on a small pool of finisher threads.

Places bound the calls. A thread takes one before it asks admission for the job, and waits
while all are taken: it stops fetching messages, and the broker keeps them for the other
processes. A place is given back when the call's finish has run, or at once by a thread
whose job did not reach the loop. A thread also waits while the loop runs late (its beat,
every ``BEAT_S``, came or is due more than ``LAG_LIMIT_S`` late): the process is short of
CPU, and more calls would starve the ones in flight until their connects time out. And it
waits while more answers wait for a finisher than ``BACKLOG_PER_FINISHER`` per finisher:
the process claims jobs faster than it ends them, and each claim would take the CPU the
finishes need, so jobs pile up running and none ends sooner.
"""

import asyncio
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import httpx

from infra import metrics
from schema.routes import Route
from workers.providers import make_async_client

logger = logging.getLogger(__name__)

T = TypeVar("T")

BEAT_S = 0.05
LAG_LIMIT_S = 0.1
BACKLOG_PER_FINISHER = 2


class CallLoop:
    """An event loop on its own thread, each route's client on it, ``places`` calls at
    most, and ``finishers`` threads for what follows each call."""

    def __init__(self, places: int, finishers: int) -> None:
        self.places = places
        self._free = threading.Semaphore(places)
        self._taken = 0
        self._changed = threading.Condition()
        self._finishers = ThreadPoolExecutor(finishers, thread_name_prefix="call-finisher")
        self._backlog_limit = BACKLOG_PER_FINISHER * finishers
        self._finishing = 0
        self._loop = asyncio.new_event_loop()
        self._thread: threading.Thread | None = None
        self._clients: dict[str, httpx.AsyncClient] = {}
        self._lag_s = 0.0
        self._next_beat = float("inf")

    @property
    def taken(self) -> int:
        """Places taken now: calls in flight, or about to be."""
        return self._taken

    @property
    def late_s(self) -> float:
        """How late the loop's last beat came, or how overdue its next one is."""
        return max(self._lag_s, time.monotonic() - self._next_beat)

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="call-loop", daemon=True
        )
        self._thread.start()
        self._loop.call_soon_threadsafe(self._beat, None)

    def _beat(self, due: float | None) -> None:
        now = self._loop.time()
        lag_s = 0.0 if due is None else max(0.0, now - due)
        with self._changed:
            self._lag_s, self._next_beat = lag_s, now + BEAT_S
            self._changed.notify_all()
        self._loop.call_at(now + BEAT_S, self._beat, now + BEAT_S)

    @property
    def finishing(self) -> int:
        """Answers waiting for a finisher or being finished now."""
        return self._finishing

    def take_place(self) -> None:
        """Wait for a free place, for the loop to keep time and for the finishers to keep
        up; ``give_back`` returns the place."""
        self._free.acquire()
        with self._changed:
            while self.late_s > LAG_LIMIT_S or self._finishing > self._backlog_limit:
                self._changed.wait(BEAT_S)
            self._taken += 1
        metrics.CALLS_IN_FLIGHT.inc()

    def give_back(self) -> None:
        metrics.CALLS_IN_FLIGHT.dec()
        with self._changed:
            self._taken -= 1
            if self._taken == 0:  # what ``close`` waits for; a late loop's waiters wait on beats
                self._changed.notify_all()
        self._free.release()

    def hand_over(
        self,
        route: Route,
        call: Callable[[httpx.AsyncClient], Awaitable[T]],
        finish: Callable[[T | Exception], None],
    ) -> None:
        """Make ``call`` on the loop with the route's client, then run ``finish`` with what
        it returned or raised on a finisher thread, then give the caller's place back."""
        asyncio.run_coroutine_threadsafe(self._make(route, call, finish), self._loop)

    async def _make(
        self,
        route: Route,
        call: Callable[[httpx.AsyncClient], Awaitable[T]],
        finish: Callable[[T | Exception], None],
    ) -> None:
        try:
            answer: T | Exception
            client = self._clients.get(route.name)
            if client is None:
                client = self._clients[route.name] = make_async_client(route, self.places)
            try:
                answer = await call(client)
            except Exception as exc:
                answer = exc
            with self._changed:
                self._finishing += 1
            try:
                await self._loop.run_in_executor(self._finishers, finish, answer)
            finally:
                with self._changed:
                    self._finishing -= 1
                    self._changed.notify()
        except Exception:
            logger.exception("a provider call's finish broke; its lease will lapse")
        finally:
            self.give_back()

    def close(self, drain_s: float) -> None:
        """Wait up to ``drain_s`` for the calls in flight to end, then cancel the rest
        (their leases lapse and the sweep runs their jobs again) and stop."""
        with self._changed:
            self._changed.wait_for(lambda: self._taken == 0, timeout=drain_s)
        if self._thread is not None:
            asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result()
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join()
            self._thread = None
        with self._changed:
            self._lag_s, self._next_beat = 0.0, float("inf")
            self._changed.notify_all()
        self._finishers.shutdown(wait=True)
        self._loop.close()

    async def _stop(self) -> None:
        calls = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        for task in calls:
            task.cancel()
        await asyncio.gather(*calls, return_exceptions=True)
        for client in self._clients.values():
            await client.aclose()
