"""Entry module for ``dramatiq workers.main``: each worker process builds its own runtime."""

import dramatiq

from schema.brokers import make_broker
from schema.settings import Settings
from workers.actors import declare_actors
from workers.runtime import Runtime

settings = Settings()
broker = make_broker(settings, consumer=True)
dramatiq.set_broker(broker)
runtime = Runtime(settings, broker)
actors = declare_actors(runtime)
