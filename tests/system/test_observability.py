"""Metrics read after real work, readiness when Redis goes away, the scheduler's /metrics."""

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY
from pydantic import SecretStr

from genq.processes import free_port
from infra.redis_conn import ensure_embedded_redis, stop_embedded_redis
from producers import Producer
from producers.api import create_app
from schema.settings import Settings
from tests.producers.test_api import CHAT
from tests.workers.test_webhooks import add_endpoint, finished_delivery, run_job
from workers.scheduler import serve_metrics

on_postgresql = pytest.mark.parametrize("engine", ["postgresql"], indirect=True)


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def metric_lines(client: TestClient) -> list[str]:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return response.text.splitlines()


@on_postgresql
def test_a_job_moves_the_counters(client, auth, worker) -> None:
    before = {
        "jobs": sample("genq_jobs_total", route="openai", status="succeeded"),
        "calls": sample(
            "genq_provider_call_seconds_count",
            route="openai",
            model="gpt-4o-mini",
            outcome="succeeded",
        ),
        "tokens": sample(
            "genq_tokens_total", route="openai", model="gpt-4o-mini", direction="output"
        ),
        "cost": sample("genq_cost_usd_total", route="openai", model="gpt-4o-mini"),
    }

    job = run_job(client, auth)

    assert job["status"] == "succeeded"
    assert sample("genq_jobs_total", route="openai", status="succeeded") == before["jobs"] + 1
    assert (
        sample(
            "genq_provider_call_seconds_count",
            route="openai",
            model="gpt-4o-mini",
            outcome="succeeded",
        )
        == before["calls"] + 1
    )
    tokens = sample("genq_tokens_total", route="openai", model="gpt-4o-mini", direction="output")
    assert tokens == before["tokens"] + job["usage"]["output_tokens"]
    cost = sample("genq_cost_usd_total", route="openai", model="gpt-4o-mini")
    assert cost == pytest.approx(before["cost"] + job["cost_usd"])
    assert f'genq_jobs_total{{route="openai",status="succeeded"}} {before["jobs"] + 1}' in (
        metric_lines(client)
    )


@on_postgresql
def test_provider_errors_and_429s_are_counted(client, auth, worker, sim_control) -> None:
    sim_control.faults({"endpoint": "chat.completions", "kind": "status", "code": 429, "count": 1})
    before = sample("genq_provider_rate_limited_total", route="openai")
    errors = sample("genq_provider_errors_total", route="openai", error="rate_limited")

    assert run_job(client, auth)["status"] == "succeeded"

    assert sample("genq_provider_rate_limited_total", route="openai") == before + 1
    assert sample("genq_provider_errors_total", route="openai", error="rate_limited") == errors + 1


@on_postgresql
def test_the_api_reads_queues_jobs_letters_and_circuits_at_scrape(client, auth) -> None:
    client.post("/v1/jobs", json=CHAT, headers=auth)

    lines = metric_lines(client)

    assert 'genq_queue_depth{queue="genq.jobs"} 1.0' in lines
    (age,) = [
        x for x in lines if x.startswith('genq_queue_oldest_message_age_seconds{queue="genq.jobs"}')
    ]
    assert float(age.split()[-1]) >= 0
    assert 'genq_jobs_in_state{route="openai",status="queued"} 1.0' in lines
    assert "genq_dead_letters_open 0.0" in lines
    assert 'genq_circuit_state{route="openai"} 0.0' in lines


@on_postgresql
def test_webhook_attempts_are_counted_by_outcome(client, auth, worker, hooks) -> None:
    before = sample("genq_webhook_attempts_total", outcome="succeeded", status_class="2xx")
    endpoint = add_endpoint(client, auth, hooks.url(hooks.new()))

    sent = client.post(f"/v1/webhook-endpoints/{endpoint['id']}/test", headers=auth).json()

    assert finished_delivery(client, auth, sent["id"])["status"] == "succeeded"
    assert sample("genq_webhook_attempts_total", outcome="succeeded", status_class="2xx") == (
        before + 1
    )


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[str]:
    url = ensure_embedded_redis(tmp_path)
    yield url
    stop_embedded_redis(tmp_path)


@on_postgresql
def test_readyz_fails_when_redis_stops(settings: Settings, engine, routes, own_redis, tmp_path):
    settings.redis_url = SecretStr(own_redis)
    producer = Producer(settings, engine=engine, routes=routes)
    with TestClient(create_app(producer), raise_server_exceptions=False) as client:
        up = client.get("/readyz")
        stop_embedded_redis(tmp_path)
        down = client.get("/readyz")
        scraped = client.get("/metrics")

    assert up.status_code == 200
    assert down.status_code == 503
    assert down.json()["status"] == "unavailable"
    assert down.json()["checks"]["redis"].startswith("error")
    assert down.json()["checks"]["broker"].startswith("error")
    assert down.json()["checks"]["database"] == "ok"
    assert scraped.status_code == 200
    assert "genq_queue_depth" not in scraped.text


def test_the_scheduler_serves_its_metrics() -> None:
    port = free_port()
    serve_metrics(port)

    text = httpx.get(f"http://127.0.0.1:{port}/metrics").text

    assert "# TYPE genq_scheduler_items_total counter" in text
    assert "# TYPE genq_jobs_total counter" in text
