"""Entry module for ``dramatiq workers.main``: each worker process builds its own runtime."""

import dramatiq

from schema.redis_conn import redis_url
from schema.settings import Settings
from workers.actors import declare_actors
from workers.broker import worker_broker
from workers.runtime import Runtime

settings = Settings()
broker = worker_broker(redis_url(settings))
dramatiq.set_broker(broker)
runtime = Runtime(settings, broker)
actors = declare_actors(runtime)
