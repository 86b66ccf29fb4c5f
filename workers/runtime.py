"""What a worker process holds: settings, broker, database sessions, routes, the job
services (cache, limits: circuits, rates and in-flight slots, durations, kept answers,
provider clients, the call loop) and the webhook sender's gate, client and DNS resolver
(a test swaps
``resolve`` to play DNS).

``build_runtime`` makes them from settings, with pools sized from what the process really
runs at once: its threads, its finishers and the calls on its loop. A ``Runtime`` only
holds them: like Dramatiq's ``Worker``, ``start`` starts its threads (the slot renewer, the
call loop) and ``close`` stops them and closes what it holds."""

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

import dramatiq
import redis
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from infra import reconnect
from infra.db import make_engine, make_sessions
from infra.destinations import Resolver, resolve_host
from infra.direct import Direct, Executes, direct_on
from infra.known_secrets import register_configured
from infra.redis_conn import connect, redis_url
from schema.routes import Route, Routes, load_routes
from schema.settings import Settings
from store import webhook_targets
from store.sent_marks import SentMarks
from store.webhook_targets import EndpointCache
from workers.cache import ResultCache
from workers.call_loop import CallLoop
from workers.durations import Durations
from workers.kept import KeptAnswers
from workers.limits import Limits
from workers.providers import Adapter
from workers.providers.clients import ProviderClients
from workers.ratelimit import LEASE_TTL_MS
from workers.webhooks.connections import Connections
from workers.webhooks.gate import ReceiverGate

logger = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(eq=False)
class Runtime:
    """The services a worker's actors use; no thread runs until ``start``."""

    settings: Settings
    broker: dramatiq.Broker
    engine: Engine
    sessions: sessionmaker[Session]
    routes: Routes
    redis_client: redis.Redis
    cache: ResultCache
    limits: Limits
    durations: Durations
    kept: KeptAnswers
    providers: ProviderClients
    webhook_gate: ReceiverGate
    webhook_connections: Connections
    sent_marks: SentMarks
    calls: CallLoop | None = None
    resolve: Resolver = resolve_host
    # The job path's statements straight on the driver, each committed alone (PostgreSQL);
    # None on SQLite.
    direct: Direct | None = None
    _stopping: threading.Event = field(default_factory=threading.Event, init=False, repr=False)
    _renewer: threading.Thread | None = field(default=None, init=False, repr=False)

    def adapter(self, route: Route) -> Adapter:
        """The route's adapter on a pooled client shared by the worker's threads."""
        return self.providers.adapter(route)

    def alone(self, work: Callable[[Executes], T]) -> T:
        """``work``, whose statements need no transaction together: each committed alone on
        the driver (PostgreSQL), else in one transaction on the engine."""
        if self.direct is not None:
            return work(self.direct)
        return reconnect.transaction(self.engine.begin, work)

    def lease_s(self, route: Route) -> float:
        """How long a claimed job stays with its worker before another may take it over."""
        return route.timeout_s + self.settings.job_lease_margin_s

    def start(self) -> None:
        """Start renewing this process's in-flight slots (a live worker keeps its slots, a
        dead one's lapse within ``LEASE_TTL_MS``) and the call loop."""
        self._stopping.clear()
        self._renewer = threading.Thread(target=self._renew_slots, name="slot-renewer", daemon=True)
        self._renewer.start()
        if self.calls is not None:
            self.calls.start()

    def close(self) -> None:
        """Let the calls in flight end (for as long as the longest lease, after which
        another worker may take their jobs over anyway), stop the slot renewer, mark the
        messages sent that are still to be marked, then close the clients and the engine
        this runtime holds."""
        if self.calls is not None:
            longest = max(
                (self.lease_s(route) for route in self.routes.by_name.values()), default=0.0
            )
            self.calls.close(drain_s=longest)
        self._stopping.set()
        if self._renewer is not None:
            self._renewer.join()
            self._renewer = None
        self.sent_marks.close()
        self.providers.close()
        self.webhook_connections.close()
        self.redis_client.close()
        self.engine.dispose()

    def _renew_slots(self) -> None:
        while not self._stopping.wait(LEASE_TTL_MS / 3000):
            try:
                self.limits.renew_slots()
            except redis.RedisError:
                logger.warning("could not renew in-flight slots", exc_info=True)


# What follows a call on the loop is a few short round trips to Redis and the store: a
# handful of finishers keeps up with any rate one process reaches, and more only contend
# for the interpreter with the claiming threads and the loop.
MAX_FINISHERS = 8


def build_runtime(
    settings: Settings,
    broker: dramatiq.Broker,
    *,
    engine: Engine | None = None,
    routes: Routes | None = None,
) -> Runtime:
    """A runtime whose services are made from ``settings``; a test passes its own engine and
    routes to share them."""
    threads = settings.worker_threads
    finishers = min(threads, MAX_FINISHERS) if settings.worker_in_flight else 0
    # A connection for each thread and finisher, and two for the renewer and the recheck
    # a claim may send.
    engine = engine or make_engine(settings.database_url_value, pool_size=threads + finishers + 2)
    routes = routes or load_routes(settings.routes_file)
    register_configured(settings, routes)
    for model, fallback, variable in routes.unkeyed_fallbacks():
        logger.warning("fallback %s of %s is skipped: %s is unset", fallback, model, variable)
    client = connect(redis_url(settings))
    sessions = make_sessions(engine)
    webhook_targets.attach(sessions, EndpointCache(client))
    return Runtime(
        settings=settings,
        broker=broker,
        engine=engine,
        sessions=sessions,
        routes=routes,
        redis_client=client,
        cache=ResultCache(client),
        limits=Limits(client, horizon_ms=int(settings.rate_horizon_s * 1000)),
        durations=Durations(client),
        kept=KeptAnswers(client, settings.kept_result_ttl_s),
        providers=ProviderClients(max_connections=threads),
        webhook_gate=ReceiverGate(client, settings.webhook_max_in_flight),
        webhook_connections=Connections(
            max_connections=threads,
            max_keepalive=min(threads, settings.webhook_max_in_flight),
        ),
        sent_marks=SentMarks(sessions),
        calls=CallLoop(settings.worker_in_flight, finishers) if finishers else None,
        direct=direct_on(engine),
    )


class RuntimeLifecycle(dramatiq.Middleware):
    """Starts a runtime when its Dramatiq worker boots and closes it once the worker has shut
    down, so the runtime's threads live exactly as long as the worker's."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def after_worker_boot(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        self.runtime.start()

    def after_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        self.runtime.close()
