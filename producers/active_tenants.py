"""Telling the workers' limiter which tenants have work queued on a route.

A tenant counts towards a route's fair shares while its mark (a score in the route's
active-tenants sorted set) is younger than ``ACTIVE_WINDOW_MS``. An enqueue marks the
tenant at once, so its share counts from now rather than from when a worker first reaches
its jobs. A mark this process made less than ``REMARK_MS`` ago is left as it is: the
tenant stays active at least ``ACTIVE_WINDOW_MS - REMARK_MS`` after its last enqueue, and a
tenant that enqueues one job at a time costs one Redis round trip a second, not one a job.
A mark that Redis refused is not remembered, so the next enqueue tries again.
"""

import logging
import threading
import time
from collections.abc import Callable, Iterable

import redis

from schema.names import active_tenants_key

logger = logging.getLogger(__name__)

REMARK_MS = 1_000
MAX_REMEMBERED = 10_000


class ActiveTenants:
    def __init__(
        self,
        client: redis.Redis,
        *,
        clock_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
    ) -> None:
        self.client = client
        self.clock_ms = clock_ms
        self._marked: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()

    def mark(self, tenant_id: str, routes: Iterable[str]) -> None:
        """Mark ``tenant_id`` active on ``routes`` unless this process did so lately; a
        Redis error only logs, since an enqueue must not fail for it."""
        now_ms = self.clock_ms()
        with self._lock:
            due = [
                route
                for route in routes
                if now_ms - self._marked.get((tenant_id, route), -REMARK_MS) >= REMARK_MS
            ]
        if not due:
            return
        try:
            with self.client.pipeline(transaction=False) as pipe:
                for route in due:
                    pipe.zadd(active_tenants_key(route), {tenant_id: now_ms})
                pipe.execute()
        except redis.RedisError:
            logger.warning("could not mark tenant active", exc_info=True)
            return
        with self._lock:
            if len(self._marked) + len(due) > MAX_REMEMBERED:
                self._marked.clear()
            self._marked.update({(tenant_id, route): now_ms for route in due})
