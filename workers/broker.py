"""The broker workers consume from: Dramatiq on Redis with Dramatiq's default middleware."""

from dramatiq.brokers.redis import RedisBroker

from schema.names import BROKER_NAMESPACE
from schema.redis_conn import connect


def worker_broker(redis_url: str) -> RedisBroker:
    return RedisBroker(client=connect(redis_url), namespace=BROKER_NAMESPACE)
