"""Entry module for ``dramatiq workers.main``: each worker process sets up logging and
Sentry, then builds its broker (with Dramatiq's Prometheus middleware when ``genq
worker`` enabled metrics) and its runtime, which starts when the worker boots and closes
when it shuts down, and beats to the broker while it lives."""

import os

import dramatiq

from infra.brokers import make_broker
from infra.error_reports import init_error_reports
from infra.logs import configure_logging
from schema.settings import Settings
from workers.actors import declare_actors
from workers.broker_heartbeat import BrokerHeartbeat
from workers.metrics_dir import ENABLED
from workers.runtime import RuntimeLifecycle, build_runtime

settings = Settings()
configure_logging(settings.log_format, settings.log_level)
init_error_reports(settings, "worker")
broker = make_broker(settings, consumer=True)
if os.environ.get(ENABLED):
    from dramatiq.middleware.prometheus import Prometheus

    broker.add_middleware(Prometheus())
dramatiq.set_broker(broker)
runtime = build_runtime(settings, broker)
broker.add_middleware(RuntimeLifecycle(runtime))
broker.add_middleware(BrokerHeartbeat(settings.broker_heartbeat_timeout_s / 3))
actors = declare_actors(runtime)
