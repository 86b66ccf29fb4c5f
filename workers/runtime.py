"""What a worker process holds: settings, database sessions, routes, HTTP clients, broker,
and the webhook sender's gate and DNS resolver (a test swaps the resolver to play DNS)."""

import logging
import threading

import dramatiq
import redis
from sqlalchemy import Engine

from infra.db import make_engine, make_sessions
from infra.destinations import Resolver, resolve_host
from infra.redis_conn import connect, redis_url
from schema.routes import Route, Routes, load_routes
from schema.settings import Settings
from workers.breaker import CircuitBreaker
from workers.cache import ResultCache
from workers.durations import Durations
from workers.providers import Adapter
from workers.providers.clients import ProviderClients
from workers.ratelimit import LEASE_TTL_MS, RateLimiter
from workers.webhooks import sender as webhooks_sender
from workers.webhooks.gate import ReceiverGate

logger = logging.getLogger(__name__)


class Runtime:
    def __init__(
        self,
        settings: Settings,
        broker: dramatiq.Broker,
        *,
        engine: Engine | None = None,
        routes: Routes | None = None,
        redis_client: redis.Redis | None = None,
    ) -> None:
        self.settings = settings
        self.broker = broker
        self.engine = engine or make_engine(settings.database_url_value)
        self.sessions = make_sessions(self.engine)
        self.routes = routes or load_routes(settings.routes_file)
        client = redis_client or connect(redis_url(settings))
        self.cache = ResultCache(client)
        self.limiter = RateLimiter(client, horizon_ms=int(settings.rate_horizon_s * 1000))
        self.breaker = CircuitBreaker(client)
        self.durations = Durations(client)
        self._renewer = threading.Thread(target=self._renew_slots, name="slot-renewer", daemon=True)
        self._stopping = threading.Event()
        self._renewer.start()
        self.providers = ProviderClients(max_connections=settings.worker_threads)
        self.webhook_gate = ReceiverGate(client, settings.webhook_max_in_flight)
        self.webhook_client = webhooks_sender.make_client(settings.worker_threads)
        self.resolve: Resolver = resolve_host

    def adapter(self, route: Route) -> Adapter:
        """The route's adapter on a pooled client shared by the worker's threads."""
        return self.providers.adapter(route)

    def lease_s(self, route: Route) -> float:
        """How long a claimed job stays with its worker before another may take it over."""
        return route.timeout_s + self.settings.job_lease_margin_s

    def _renew_slots(self) -> None:
        while not self._stopping.wait(LEASE_TTL_MS / 3000):
            try:
                self.limiter.renew_slots()
            except redis.RedisError:
                logger.warning("could not renew in-flight slots", exc_info=True)

    def close(self) -> None:
        self._stopping.set()
        self.providers.close()
        self.webhook_client.close()
        self.cache.client.close()
        self.engine.dispose()
