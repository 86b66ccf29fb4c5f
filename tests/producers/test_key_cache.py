"""The API's cache of checked tenant keys: a revoked key or a changed rate is seen once
the cache's time is up, an unknown key is never kept, and the cache stays bounded."""

from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from infra.db import make_sessions
from producers.key_cache import TenantKeys
from schema.tables import ApiKey, Tenant, utcnow
from store.tenants import issue_key

TTL_S = 5.0


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def keys(engine, ttl_s: float = TTL_S, **options) -> tuple[TenantKeys, Clock]:  # type: ignore[no-untyped-def]
    clock = Clock()
    return TenantKeys(make_sessions(engine), ttl_s, clock=clock, **options), clock


def revoke_all(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        session.execute(update(ApiKey).values(revoked_at=utcnow()))


def test_a_revoked_key_is_refused_once_the_cache_time_is_up(engine, tenant) -> None:
    cache, clock = keys(engine)
    assert cache.holder(tenant.api_key).tenant_id == tenant.tenant_id

    revoke_all(cache.sessions)

    clock.now += TTL_S - 0.01
    assert cache.holder(tenant.api_key) is not None  # still trusted: within the bound
    clock.now += 0.01
    assert cache.holder(tenant.api_key) is None


def test_forget_and_a_zero_time_see_a_revocation_at_once(engine, tenant) -> None:
    cache, _ = keys(engine)
    uncached, _ = keys(engine, ttl_s=0)
    assert cache.holder(tenant.api_key) and uncached.holder(tenant.api_key)

    revoke_all(cache.sessions)

    assert uncached.holder(tenant.api_key) is None
    cache.forget()
    assert cache.holder(tenant.api_key) is None


def test_an_unknown_key_is_not_kept(engine, tenant) -> None:
    cache, _ = keys(engine)
    with cache.sessions.begin() as session:
        new_key = issue_key(session, tenant.tenant_id)
    revoke_all(cache.sessions)
    assert cache.holder(new_key) is None
    with cache.sessions.begin() as session:
        session.execute(update(ApiKey).values(revoked_at=None))

    assert cache.holder(new_key) is not None
    assert cache.holder("not-a-genq-key") is None


def test_a_changed_rate_is_seen_once_the_cache_time_is_up(engine, tenant) -> None:
    cache, clock = keys(engine)
    assert cache.holder(tenant.api_key).rate_per_minute is None
    with cache.sessions.begin() as session:
        session.execute(update(Tenant).values(rate_per_minute=7))

    assert cache.rate(tenant.tenant_id) is None
    clock.now += TTL_S
    assert cache.rate(tenant.tenant_id) == 7


def test_the_cache_drops_its_oldest_entries_past_its_size(engine, tenant) -> None:
    cache, _ = keys(engine, max_entries=2)
    cache.holder(tenant.api_key)  # kept by key and by tenant
    revoke_all(cache.sessions)

    cache.rate("ten_other")  # a third entry pushes out the key

    assert cache.holder(tenant.api_key) is None
