"""Noticing lost messages quickly: dead workers' messages and a broker that lost its data.

On Redis, a Dramatiq worker moves each message it fetches (prefetched or running) into its
own ack set and keeps a heartbeat in ``<namespace>:__heartbeats__``; Dramatiq's
``dispatch.lua`` moves the ack set of a worker silent for ``heartbeat_timeout`` back onto
its queue, but only during "maintenance", which a random 0.1 % of commands run, one queue
at a time. So genq's scheduler runs that maintenance on every queue every few seconds
(``requeue_orphans``), and each worker process beats on its own (``beat``), because a
worker whose threads are all busy with long calls sends no command that would beat for it.

On RabbitMQ, messages a consumer holds return to the queue when its channel dies, so
nothing is needed there.

A broker that lost its data (Redis flushed or restarted empty, a RabbitMQ node that lost
its disk) holds no message for any open job. The scheduler keeps an epoch marker in the
broker (a key in Redis, a durable empty queue in RabbitMQ) and notices when the
marker is gone (``epoch_missing``); the scheduler then re-sends every open job and puts
the marker back (``mark_epoch``).
"""

import dramatiq
import pika
from dramatiq.brokers.rabbitmq import RabbitmqBroker
from dramatiq.brokers.redis import MAINTENANCE_SCALE, RedisBroker
from dramatiq.common import current_millis, dq_name
from pika.exceptions import ChannelClosedByBroker

from schema.names import BROKER_NAMESPACE

EPOCH_KEY = f"{BROKER_NAMESPACE}:__epoch__"
EPOCH_QUEUE = f"{BROKER_NAMESPACE}.epoch"
NOT_FOUND = 404


def beat(broker: dramatiq.Broker) -> None:
    """Tell the Redis broker this process is alive, as Dramatiq's own commands do."""
    if isinstance(broker, RedisBroker):
        heartbeats = f"{broker.namespace}:__heartbeats__"
        broker.client.zadd(heartbeats, {broker.broker_id: current_millis()})


def maintainer(broker: dramatiq.Broker) -> RedisBroker | None:
    """A twin of a Redis broker that runs maintenance on every command (None for other
    brokers): Dramatiq's "maintenance" is no command of its own, only the preamble every
    dispatch runs when its dice say so."""
    if not isinstance(broker, RedisBroker):
        return None
    return RedisBroker(
        client=broker.client,
        namespace=broker.namespace,
        heartbeat_timeout=broker.heartbeat_timeout,
        dead_message_ttl=broker.dead_message_ttl,
        maintenance_chance=MAINTENANCE_SCALE,
        middleware=[],
    )


def requeue_orphans(twin: RedisBroker, queue_names: list[str]) -> None:
    """Put the messages of workers silent past the heartbeat timeout back on their queues
    (and delay queues), with Dramatiq's own script; ``twin`` comes from ``maintainer``."""
    for name in queue_names:
        for queue in (name, dq_name(name)):
            twin.do_maintenance(queue)


def epoch_missing(broker: dramatiq.Broker) -> bool:
    """Whether the broker lacks the epoch marker: it lost its data, or no scheduler ever
    marked it. ``mark_epoch`` puts the marker back once every open job was re-sent."""
    if isinstance(broker, RedisBroker):
        return not broker.client.exists(EPOCH_KEY)
    if isinstance(broker, RabbitmqBroker):
        connection = pika.BlockingConnection(broker.parameters)
        try:
            connection.channel().queue_declare(EPOCH_QUEUE, passive=True)
            return False
        except ChannelClosedByBroker as closed:
            if closed.reply_code == NOT_FOUND:  # the queue, and so the broker's data, is gone
                return True
            raise
        finally:
            connection.close()
    raise TypeError(f"no epoch marker for {type(broker).__name__}")


def mark_epoch(broker: dramatiq.Broker) -> None:
    """Put the epoch marker in the broker (a no-op if it is there)."""
    if isinstance(broker, RedisBroker):
        broker.client.set(EPOCH_KEY, current_millis())
    elif isinstance(broker, RabbitmqBroker):
        connection = pika.BlockingConnection(broker.parameters)
        try:
            connection.channel().queue_declare(EPOCH_QUEUE, durable=True)
        finally:
            connection.close()
    else:
        raise TypeError(f"no epoch marker for {type(broker).__name__}")
