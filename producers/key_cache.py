"""Tenant keys an API process has checked, trusted for a short time.

Every /v1 request carries a tenant key, and every enqueue needs the tenant's rate and
budget period; asking the store each time costs a pool checkout and a query per request.
``TenantKeys`` keeps what it found for ``ttl_s`` seconds, so a revoked key or a changed
tenant rate takes effect within ``ttl_s`` in every process (at once in one that calls
``forget``); a budget period kept here is only a hint, which the reservation checks. An
unknown key is never kept: a key works as soon as it is issued, and guessed keys fill
nothing. At most ``max_entries`` entries are kept, the oldest dropped first.
"""

import threading
import time
from collections.abc import Callable

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from schema.tables import Tenant
from store.tenants import KeyHolder, hash_key, key_holder


class TenantKeys:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        ttl_s: float,
        *,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.sessions = sessions
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self.clock = clock
        self._kept: dict[str, tuple[float, KeyHolder]] = {}
        self._lock = threading.Lock()

    def holder(self, api_key: str) -> KeyHolder | None:
        """Who holds ``api_key`` (None for an unknown or revoked key)."""
        by_key = "key:" + hash_key(api_key)
        holder = self._fresh(by_key)
        if holder is None:
            with self.sessions() as session:
                holder = key_holder(session, api_key)
            if holder is not None:
                self._keep(by_key, holder)
                self._keep("tenant:" + holder.tenant_id, holder)
        return holder

    def rate(self, tenant_id: str) -> int | None:
        """The tenant's own enqueue rate per minute, if it has one."""
        return self._tenant(tenant_id).rate_per_minute

    def budget_period(self, tenant_id: str) -> str | None:
        """The tenant's budget period as last read: a hint, which the reservation checks."""
        return self._tenant(tenant_id).budget_period

    def _tenant(self, tenant_id: str) -> KeyHolder:
        by_tenant = "tenant:" + tenant_id
        holder = self._fresh(by_tenant)
        if holder is None:
            with self.sessions() as session:
                row = session.execute(
                    select(Tenant.rate_per_minute, Tenant.budget_period).where(
                        Tenant.id == tenant_id
                    )
                ).one_or_none()
            holder = KeyHolder(tenant_id, *(row or (None, None)))
            self._keep(by_tenant, holder)
        return holder

    def forget(self) -> None:
        """Drop everything kept, so the next request asks the store."""
        with self._lock:
            self._kept.clear()

    def _fresh(self, name: str) -> KeyHolder | None:
        kept = self._kept.get(name)
        if kept is None or kept[0] <= self.clock():
            return None
        return kept[1]

    def _keep(self, name: str, holder: KeyHolder) -> None:
        if self.ttl_s <= 0:
            return
        with self._lock:
            self._kept.pop(name, None)
            self._kept[name] = (self.clock() + self.ttl_s, holder)
            while len(self._kept) > self.max_entries:
                del self._kept[next(iter(self._kept))]
