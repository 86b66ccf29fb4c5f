"""Outbox rows marked sent in batches, off the sender's path.

A sender that has just sent the messages of its commit would otherwise open a second
transaction to mark their rows; ``SentMarks`` collects the ids and marks them from a
background thread every ``every_s`` seconds, in one statement. A mark that never lands
(the process died, the store was down) means only that the relay sends the row again
after its grace time, which is safe: every actor is idempotent on the job's state. So
``every_s`` must stay well below the relay's grace time, or the relay re-sends rows
whose marks are merely late.
"""

import logging
import threading

from sqlalchemy.orm import Session, sessionmaker

from store.outbox import mark_sent

logger = logging.getLogger(__name__)

MAX_PENDING = 100_000  # past this, the oldest marks are dropped: the relay re-sends those


class SentMarks:
    def __init__(self, sessions: sessionmaker[Session], every_s: float = 0.2) -> None:
        self.sessions = sessions
        self.every_s = every_s
        self._pending: list[int] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def add(self, ids: list[int]) -> None:
        """Mark these rows sent within ``every_s`` seconds."""
        if not ids:
            return
        with self._lock:
            self._pending.extend(ids)
            del self._pending[:-MAX_PENDING]
            # None yet, or stopped: closed, or this is a fork that did not inherit it.
            if self._thread is None or not self._thread.is_alive():
                self._stopping.clear()
                self._thread = threading.Thread(target=self._run, name="outbox-marks", daemon=True)
                self._thread.start()

    def flush(self) -> int:
        """Mark every pending row now; return how many. On failure they stay pending."""
        with self._lock:
            ids, self._pending = self._pending, []
        if not ids:
            return 0
        try:
            with self.sessions.begin() as session:
                mark_sent(session, ids)
        except Exception:
            with self._lock:
                self._pending[:0] = ids
                del self._pending[:-MAX_PENDING]
            raise
        return len(ids)

    def close(self) -> None:
        """Stop the thread and mark what is pending, if the store lets us."""
        self._stopping.set()
        if self._thread is not None and self._thread.is_alive():
            self._thread.join()
        try:
            self.flush()
        except Exception:
            logger.warning("outbox: marks left for the relay", exc_info=True)

    def _run(self) -> None:
        while not self._stopping.wait(self.every_s):
            try:
                self.flush()
            except Exception:
                logger.warning("outbox: could not mark rows sent; retrying", exc_info=True)
