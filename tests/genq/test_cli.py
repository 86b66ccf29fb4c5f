"""The ``genq`` command line: tenants, jobs, migrations, and clear errors with exit code 2."""

from pathlib import Path

import pytest
from sqlalchemy import Engine
from typer.testing import CliRunner

from genq.cli import app
from infra.db import is_migrated, make_engine, make_sessions
from store.tenants import authenticate
from store.webhook_secrets import signing_secrets
from tests.producers.test_api import CHAT

runner = CliRunner()


@pytest.fixture
def db_env(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> Engine:
    monkeypatch.setenv("GENQ_DATABASE_URL", engine.url.render_as_string(hide_password=False))
    return engine


def test_tenants_create_prints_a_key_and_a_webhook_secret(db_env: Engine) -> None:
    result = runner.invoke(app, ["tenants", "create", "acme"])

    assert result.exit_code == 0, result.output
    lines = dict(line.rsplit(" ", 1) for line in result.stdout.splitlines()[1:])
    with make_sessions(db_env)() as session:
        assert authenticate(session, lines["api key"]) is not None
        assert signing_secrets(session, authenticate(session, lines["api key"]), None) == [
            lines["webhook secret"]
        ]


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["tenants", "create", "  "], "1-200 characters"),
        (["jobs", "show", "job_missing"], "no job 'job_missing'"),
    ],
)
def test_bad_arguments_exit_2_with_a_message(db_env, args, says) -> None:
    result = runner.invoke(app, args)

    assert result.exit_code == 2
    assert says in result.stderr


def test_duplicate_tenant_exits_2(db_env) -> None:
    runner.invoke(app, ["tenants", "create", "acme"])
    result = runner.invoke(app, ["tenants", "create", "acme"])

    assert result.exit_code == 2
    assert "already exists" in result.stderr


def test_jobs_show_prints_the_job_and_its_attempts(db_env, client, auth, worker) -> None:
    from tests.workers.test_worker import job_of

    job_id = client.post("/v1/jobs", json=CHAT, headers=auth).json()["id"]
    job_of(client, auth, job_id, {"succeeded"})

    result = runner.invoke(app, ["jobs", "show", job_id])

    assert result.exit_code == 0
    assert f'"id": "{job_id}"' in result.stdout
    assert '"attempt_log"' in result.stdout
    assert '"status": "succeeded"' in result.stdout


def test_processes_refuse_an_unmigrated_database(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("GENQ_DATABASE_URL", f"sqlite:///{tmp_path / 'fresh.db'}")

    for command in (["api"], ["worker"], ["scheduler"], ["tenants", "create", "x"]):
        result = runner.invoke(app, command)
        assert result.exit_code == 2
        assert "run `genq migrate` first" in result.stderr


def test_migrate_creates_the_schema(tmp_path: Path, monkeypatch) -> None:
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    monkeypatch.setenv("GENQ_DATABASE_URL", url)

    result = runner.invoke(app, ["migrate"])

    assert result.exit_code == 0
    assert is_migrated(make_engine(url))


def test_unknown_option_exits_2() -> None:
    result = runner.invoke(app, ["worker", "--threads", "many"])
    assert result.exit_code == 2


def test_a_worker_refuses_a_metrics_port_another_worker_holds(db_env, monkeypatch) -> None:
    import socket

    with socket.socket() as holder:
        holder.bind(("0.0.0.0", 0))
        holder.listen()
        monkeypatch.setenv("GENQ_WORKER_METRICS_PORT", str(holder.getsockname()[1]))

        result = runner.invoke(app, ["worker"])

    assert result.exit_code == 2
    assert "is taken (another worker on this host?)" in result.output


def test_admin_keys_take_a_role(db_env) -> None:
    viewer = runner.invoke(app, ["admin", "keys", "create", "val", "--role", "viewer"])
    default = runner.invoke(app, ["admin", "keys", "create", "ops"])
    wrong = runner.invoke(app, ["admin", "keys", "create", "eve", "--role", "root"])
    listed = runner.invoke(app, ["admin", "keys", "list"])

    assert "role      viewer" in viewer.output
    assert "role      operator" in default.output
    assert wrong.exit_code == 2
    assert "val\tviewer" in listed.output and "ops\toperator" in listed.output
