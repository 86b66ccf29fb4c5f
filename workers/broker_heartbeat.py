"""A worker process's own heartbeat to the Redis broker, every third of the heartbeat
timeout: Dramatiq beats only when a consumer sends a command, and a process whose threads
are all busy with long provider calls sends none, so without this its prefetched messages
would be handed to another worker while it still holds them (``infra/broker_upkeep.py``)."""

import logging
import threading

import dramatiq
import redis

from infra.broker_upkeep import beat

logger = logging.getLogger(__name__)


class BrokerHeartbeat(dramatiq.Middleware):
    """Beats from a thread that lives as long as the Dramatiq worker."""

    def __init__(self, every_s: float) -> None:
        self.every_s = every_s
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def after_worker_boot(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        self._stopping.clear()
        self._thread = threading.Thread(
            target=self._run, args=(broker,), name="broker-heartbeat", daemon=True
        )
        self._thread.start()

    def before_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _run(self, broker: dramatiq.Broker) -> None:
        while not self._stopping.wait(self.every_s):
            try:
                beat(broker)
            except redis.RedisError:
                logger.warning("could not send the broker heartbeat", exc_info=True)
