"""The Dramatiq broker, built here for both rooms: Redis by default, RabbitMQ with
``GENQ_BROKER=rabbitmq``.

Senders (the API, the scheduler, the command line) get a broker without middleware and
without actors: they address actors by the names in ``schema.names``. Consumers (worker
processes) get Dramatiq's default middleware. Queue names are the same on both brokers.
On Redis, every enqueue also wakes the queue's idle consumers (``infra/redis_wakeups.py``).
Only the message broker changes: limits, circuits, the result cache and the leader lease
stay in Redis.
"""

import copy

import dramatiq
import pika
from dramatiq.brokers.rabbitmq import RabbitmqBroker
from dramatiq.brokers.redis import RedisBroker

from infra.redis_conn import connect, redis_url
from infra.redis_wakeups import WakingRedisBroker
from schema.names import BROKER_NAMESPACE
from schema.settings import Settings

PING_TIMEOUT_S = 3.0  # a readiness probe must answer before its own timeout


def make_broker(settings: Settings, *, consumer: bool) -> dramatiq.Broker:
    """The configured broker; ``consumer`` adds the middleware a worker runs actors with."""
    middleware = None if consumer else []
    if settings.broker == "rabbitmq":
        assert settings.rabbitmq_url is not None  # settings validation requires it
        # Publisher confirms: the outbox marks a row sent only once RabbitMQ has the
        # message, and a deleted queue is declared again instead of dropping it.
        return RabbitmqBroker(
            url=settings.rabbitmq_url.get_secret_value(),
            confirm_delivery=True,
            middleware=middleware,
        )
    # Every process passes the same heartbeat timeout: Dramatiq's random maintenance, run
    # by any of them, decides with it which workers are dead (see infra/broker_upkeep.py).
    # Senders wake idle consumers, so a message waits for no polling backoff.
    return WakingRedisBroker(
        client=connect(redis_url(settings)),
        namespace=BROKER_NAMESPACE,
        middleware=middleware,
        heartbeat_timeout=int(settings.broker_heartbeat_timeout_s * 1000),
        threads=settings.worker_threads if consumer else 0,
    )


def ping_broker(broker: dramatiq.Broker) -> None:
    """Raise unless the broker's server answers now."""
    if isinstance(broker, RabbitmqBroker):
        # A fresh connection: a thread's cached one may look open after the server died.
        probe = broker.parameters[0] if isinstance(broker.parameters, list) else broker.parameters
        quick = copy.copy(probe)
        quick.socket_timeout = quick.blocked_connection_timeout = PING_TIMEOUT_S
        quick.connection_attempts = 1
        pika.BlockingConnection(quick).close()
    elif isinstance(broker, RedisBroker):
        broker.client.ping()
    else:
        raise TypeError(f"no health check for {type(broker).__name__}")
