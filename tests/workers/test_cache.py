"""The result cache: an identical request is served without calling the provider again."""

from schema.jobs import TERMINAL_STATUSES as TERMINAL
from schema.names import BROKER_NAMESPACE
from tests.conftest import new_tenant
from tests.helpers import override
from tests.producers.test_api import CHAT
from tests.workers.test_worker import attempts_of, job_of


def run(client, auth, body=CHAT) -> dict:  # type: ignore[no-untyped-def]
    job_id = client.post("/v1/jobs", json=body, headers=auth).json()["id"]
    return job_of(client, auth, job_id, TERMINAL)


def test_identical_request_is_served_from_the_cache(
    client, auth, routes, worker, runtime, sim_calls
) -> None:
    override(routes, "openai", cache_ttl_s=60)

    first = run(client, auth)
    second = run(client, auth)

    assert sim_calls() == 1
    assert (first["cached"], second["cached"]) == (False, True)
    assert second["output"] == first["output"]
    assert second["cost_usd"] == 0 < first["cost_usd"]
    assert [a.status for a in attempts_of(runtime, second["id"])] == ["cached"]
    assert runtime.cache.stats() == {"openai:misses": 1, "openai:hits": 1}


def test_another_input_or_opt_out_calls_the_provider(client, auth, routes, worker, sim_calls):
    override(routes, "openai", cache_ttl_s=60)
    run(client, auth)

    other = run(client, auth, {**CHAT, "input": {**CHAT["input"], "temperature": 0.1}})
    opted_out = run(client, auth, {**CHAT, "cache": False})

    assert (other["cached"], opted_out["cached"]) == (False, False)
    assert sim_calls() == 3


def test_cache_is_per_tenant_unless_the_route_shares_it(
    client, auth, engine, routes, worker, sim_calls
) -> None:
    override(routes, "openai", cache_ttl_s=60)
    other = {"Authorization": f"Bearer {new_tenant(engine, 'globex').api_key}"}
    run(client, auth)

    assert run(client, other)["cached"] is False
    override(routes, "openai", cache_ttl_s=60, cache_shared=True)
    run(client, auth)
    assert run(client, other)["cached"] is True
    assert sim_calls() == 3


def test_cache_entries_expire_with_the_route_ttl(client, auth, routes, worker, runtime) -> None:
    override(routes, "openai", cache_ttl_s=60)
    run(client, auth)

    keys = runtime.cache.client.keys(f"{BROKER_NAMESPACE}:cache:ten_*")
    assert len(keys) == 1
    assert 0 < runtime.cache.client.ttl(keys[0]) <= 60


def test_failures_are_not_cached(client, auth, routes, worker, sim_calls) -> None:
    override(routes, "openai", cache_ttl_s=60)
    refused = {**CHAT, "input": {**CHAT["input"], "max_tokens": 10**6}}

    assert run(client, auth, refused)["status"] == "failed"
    assert run(client, auth, refused)["status"] == "failed"
    assert sim_calls() == 2
