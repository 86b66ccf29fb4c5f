"""Prometheus metrics: what each process counts as it works (the gauges read at scrape time
are in ``store/gauges.py``).

Worker processes run under Dramatiq's Prometheus middleware in multiprocess mode
(``genq worker`` sets ``PROMETHEUS_MULTIPROC_DIR`` before anything imports the client), so
its exposition server serves these counters summed over every worker process along with
Dramatiq's own ``dramatiq_*`` metrics.
"""

import logging
from datetime import datetime
from typing import Any

from prometheus_client import Counter, Gauge, Histogram

logger = logging.getLogger(__name__)

LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)

JOBS = Counter("genq_jobs", "Jobs that ended, by route and final status.", ["route", "status"])
JOB_SECONDS = Histogram(
    "genq_job_duration_seconds",
    "From enqueue to the end, by route and final status.",
    ["route", "status"],
    buckets=LATENCY_BUCKETS,
)
PROVIDER_CALL_SECONDS = Histogram(
    "genq_provider_call_seconds",
    "Provider calls (attempts), by route, model and outcome.",
    ["route", "model", "outcome"],
    buckets=LATENCY_BUCKETS,
)
PROVIDER_ERRORS = Counter(
    "genq_provider_errors", "Failed provider calls, by route and error class.", ["route", "error"]
)
PROVIDER_RATE_LIMITED = Counter(
    "genq_provider_rate_limited", "Provider answers of 429, by route.", ["route"]
)
CAPACITY_WAIT_SECONDS = Histogram(
    "genq_capacity_wait_seconds",
    "Time a job is put off for capacity (rate limits, in-flight slots, open circuit).",
    ["route"],
    buckets=LATENCY_BUCKETS,
)
COST_USD = Counter(
    "genq_cost_usd", "What provider calls cost, by route and model.", ["route", "model"]
)
TOKENS = Counter(
    "genq_tokens", "Tokens used, by route, model and direction.", ["route", "model", "direction"]
)
CALLS_IN_FLIGHT = Gauge(
    "genq_provider_calls_in_flight",
    "Provider calls a worker process holds on its event loop, summed over live processes.",
    multiprocess_mode="livesum",
)
WEBHOOK_ATTEMPTS = Counter(
    "genq_webhook_attempts", "Webhook delivery attempts, by outcome.", ["outcome", "status_class"]
)


def job_ended(route: str, status: str, created_at: datetime, finished_at: datetime | None) -> None:
    """Count a job that reached a final status, and how long it took."""
    JOBS.labels(route, status).inc()
    if finished_at is not None:
        elapsed_s = (finished_at - created_at).total_seconds()
        JOB_SECONDS.labels(route, status).observe(max(0.0, elapsed_s))


def attempt_made(route: str, model: str, attempt: dict[str, Any]) -> None:
    """Count one provider call from its attempt row: latency, error, 429, cost, tokens."""
    if "latency_ms" in attempt:
        PROVIDER_CALL_SECONDS.labels(route, model, attempt["status"]).observe(
            attempt["latency_ms"] / 1000
        )
    if attempt.get("error_class"):
        PROVIDER_ERRORS.labels(route, attempt["error_class"]).inc()
    if attempt.get("http_status") == 429:
        PROVIDER_RATE_LIMITED.labels(route).inc()
    if attempt.get("cost_micros"):
        COST_USD.labels(route, model).inc(attempt["cost_micros"] / 1_000_000)
    for direction in ("input", "output"):
        if tokens := attempt.get(f"{direction}_tokens"):
            TOKENS.labels(route, model, direction).inc(tokens)
