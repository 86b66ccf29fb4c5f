"""A tenant's webhook endpoints as events read them: cached in each process, checked
against a version in Redis that every endpoint change replaces after it commits.

Every finished job reads its tenant's endpoints inside its final transaction; the cache
turns that query into one Redis GET. A reader reads the version before it queries the
database, and a writer replaces the version only after its commit, so a list cached under
a version is never older than that version's change: a concurrent reader can at worst
cache the new list under the old version, which the next read replaces. Versions are
random tokens, never counters, so a Redis that lost its data cannot bring an old version
back. If Redis cannot answer, readers query the database; a change whose bump was lost
that way is seen once an entry reaches ``MAX_AGE_S``. A caller that already had Redis read
the version before the transaction began (a worker does, on the round trip that settles
the call) notes it on the session (``note_version``), and the read costs no round trip.

The cache rides on the session factory (``attach``), so the store functions that read or
change endpoints find it in ``session.info`` without new arguments; a session without one
reads the database every time.
"""

import logging
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Iterable
from typing import NamedTuple

import redis
from sqlalchemy import event, select
from sqlalchemy.orm import Session, sessionmaker

from schema.names import WEBHOOK_PREFIX
from schema.tables import WebhookEndpoint

logger = logging.getLogger(__name__)

INFO_KEY = "webhook_targets"
CHANGED_KEY = "webhook_targets_changed"
VERSIONS_KEY = "webhook_targets_versions"
MAX_TENANTS = 1024
MAX_AGE_S = 60.0


class EndpointRow(NamedTuple):
    id: str
    url: str
    event_types: list[str] | None
    enabled: bool
    disabled_reason: str | None


class EndpointCache:
    """Each tenant's endpoints under the version they were read at, least recently used
    dropped past ``max_tenants``."""

    def __init__(self, client: redis.Redis, max_tenants: int = MAX_TENANTS) -> None:
        self._client = client
        self._max_tenants = max_tenants
        self._entries: OrderedDict[str, tuple[bytes, float, list[EndpointRow]]] = OrderedDict()
        self._lock = threading.Lock()

    def endpoints(
        self, session: Session, tenant_id: str, version: bytes | None = None
    ) -> list[EndpointRow]:
        """The tenant's endpoints; ``version`` is theirs if the caller read it before
        ``session`` began, else it is read now."""
        if version is None:
            try:
                version = self._version(tenant_id)
            except redis.RedisError:
                logger.warning("webhook endpoints: Redis did not answer; reading the database")
                return query(session, tenant_id)
        cached = self.cached(tenant_id, version)
        if cached is not None:
            return cached
        rows = query(session, tenant_id)
        with self._lock:
            self._entries[tenant_id] = (version, time.monotonic(), rows)
            self._entries.move_to_end(tenant_id)
            while len(self._entries) > self._max_tenants:
                self._entries.popitem(last=False)
        return rows

    def cached(self, tenant_id: str, version: bytes) -> list[EndpointRow] | None:
        """The tenant's endpoints if held under ``version`` and fresh; None if not."""
        with self._lock:
            cached = self._entries.get(tenant_id)
            if cached is None or cached[0] != version or time.monotonic() - cached[1] >= MAX_AGE_S:
                return None
            self._entries.move_to_end(tenant_id)
            return cached[2]

    def bump(self, tenant_ids: Iterable[str]) -> None:
        """Give the tenants' endpoint lists new versions; call after the change commits."""
        try:
            with self._client.pipeline(transaction=False) as pipe:
                for tenant_id in tenant_ids:
                    pipe.set(version_key(tenant_id), uuid.uuid4().hex)
                pipe.execute()
        except redis.RedisError:
            logger.warning("webhook endpoints changed but Redis did not answer", exc_info=True)

    def _version(self, tenant_id: str) -> bytes:
        """The tenant's version, made up now if Redis has none."""
        key = version_key(tenant_id)
        with self._client.pipeline(transaction=False) as pipe:
            pipe.set(key, uuid.uuid4().hex, nx=True)
            pipe.get(key)
            _, version = pipe.execute()
        return version  # type: ignore[no-any-return]


def attach(sessions: sessionmaker[Session], cache: EndpointCache) -> None:
    """Have every session of ``sessions`` read and invalidate endpoints through ``cache``."""
    sessions.configure(info={INFO_KEY: cache})


def cached(
    sessions: sessionmaker[Session], tenant_id: str, version: bytes
) -> list[EndpointRow] | None:
    """The tenant's endpoints as the cache of ``sessions`` holds them under ``version``,
    without a query; None if it holds none (or ``sessions`` have no cache)."""
    cache = sessions.kw.get("info", {}).get(INFO_KEY)
    return None if cache is None else cache.cached(tenant_id, version)


def endpoints(session: Session, tenant_id: str) -> list[EndpointRow]:
    """The tenant's endpoints, oldest first, disabled ones included."""
    cache = session.info.get(INFO_KEY)
    if cache is None:
        return query(session, tenant_id)
    return cache.endpoints(session, tenant_id, session.info.get(VERSIONS_KEY, {}).get(tenant_id))


def note_version(session: Session, tenant_id: str, version: bytes) -> None:
    """Note the tenant's version, read from Redis (at ``version_key``) before ``session``
    began, for the session's read of their endpoints."""
    session.info.setdefault(VERSIONS_KEY, {})[tenant_id] = version


def changed(session: Session, tenant_id: str) -> None:
    """Note that the tenant's endpoints change in this transaction; their version is
    replaced once it commits."""
    cache = session.info.get(INFO_KEY)
    if cache is None:
        return
    pending: set[str] = session.info.setdefault(CHANGED_KEY, set())
    if not pending:
        event.listen(session, "after_commit", _bump, once=True)
    pending.add(tenant_id)


def query(session: Session, tenant_id: str) -> list[EndpointRow]:
    found = session.execute(
        select(
            WebhookEndpoint.id,
            WebhookEndpoint.url,
            WebhookEndpoint.event_types,
            WebhookEndpoint.enabled,
            WebhookEndpoint.disabled_reason,
        )
        .where(WebhookEndpoint.tenant_id == tenant_id)
        .order_by(WebhookEndpoint.created_at)
    )
    return [EndpointRow(*row) for row in found]


def _bump(session: Session) -> None:
    session.info[INFO_KEY].bump(session.info.pop(CHANGED_KEY, set()))


def version_key(tenant_id: str) -> str:
    """Where Redis keeps the version of the tenant's endpoints."""
    return f"{WEBHOOK_PREFIX}:endpoints:{tenant_id}"
