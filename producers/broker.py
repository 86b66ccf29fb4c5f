"""The broker producers send with: Dramatiq on Redis, no actors declared.

Producers address actors by the queue and actor names in ``schema.names``, so they
never import the workers.
"""

from dramatiq.brokers.redis import RedisBroker

from schema.names import BROKER_NAMESPACE
from schema.redis_conn import connect


def sending_broker(redis_url: str) -> RedisBroker:
    return RedisBroker(client=connect(redis_url), namespace=BROKER_NAMESPACE, middleware=[])
