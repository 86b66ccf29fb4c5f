"""Usage and cost: per attempt, per job, per model and per day, for tenants and operators."""

from datetime import UTC, datetime, timedelta

import pytest
from typer.testing import CliRunner

from genq.cli import app
from schema.jobs import TERMINAL_STATUSES as TERMINAL
from tests.producers.test_api import CHAT
from tests.workers.test_worker import job_of


def finish(client, auth, body=CHAT) -> dict:  # type: ignore[no-untyped-def]
    job_id = client.post("/v1/jobs", json=body, headers=auth).json()["id"]
    return job_of(client, auth, job_id, TERMINAL)


def test_usage_by_model_sums_tokens_and_cost(client, auth, worker) -> None:
    jobs = [finish(client, auth) for _ in range(2)]
    jobs.append(finish(client, auth, {**CHAT, "model": "openai/gpt-4o"}))

    report = client.get("/v1/usage", params={"group_by": "model"}, headers=auth).json()

    by_key = {row["key"]: row for row in report["data"]}
    assert set(by_key) == {"openai/gpt-4o-mini", "openai/gpt-4o"}
    mini = by_key["openai/gpt-4o-mini"]
    assert mini["jobs"] == 2
    assert mini["input_tokens"] == sum(j["usage"]["input_tokens"] for j in jobs[:2])
    assert report["total"]["cost_usd"] == pytest.approx(sum(j["cost_usd"] for j in jobs))
    assert by_key["openai/gpt-4o"]["cost_usd"] > mini["cost_usd"] / 2


def test_usage_by_day_and_window(client, auth, worker) -> None:
    finish(client, auth)
    today = datetime.now(UTC).date().isoformat()

    by_day = client.get("/v1/usage", params={"group_by": "day"}, headers=auth).json()
    assert [row["key"] for row in by_day["data"]] == [today]
    later = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    empty = client.get(
        "/v1/usage", params={"from": later, "to": later.replace("T", "T23:")[:13]}, headers=auth
    )
    assert empty.status_code == 422
    window = {"from": "2020-01-01T00:00:00Z", "to": "2020-02-01T00:00:00Z"}
    assert client.get("/v1/usage", params=window, headers=auth).json()["data"] == []


def test_usage_bad_parameters_are_422(client, auth) -> None:
    assert client.get("/v1/usage", params={"group_by": "hour"}, headers=auth).status_code == 422
    assert client.get("/v1/usage", params={"from": "yesterday"}, headers=auth).status_code == 422
    assert client.get("/v1/usage").status_code == 401


def test_genq_usage_prints_the_same_for_an_operator(client, auth, worker, tenant, monkeypatch):
    from tests.genq.test_cli import runner

    monkeypatch.setenv(
        "GENQ_DATABASE_URL", client.app.state.producer.engine.url.render_as_string(False)
    )
    job = finish(client, auth)

    result = runner.invoke(app, ["usage", "--tenant", "acme", "--group-by", "model"])

    assert result.exit_code == 0, result.output
    assert "openai/gpt-4o-mini" in result.stdout
    assert f"{job['cost_usd']:.6f}" in result.stdout
    missing = CliRunner().invoke(app, ["usage", "--tenant", "nobody"])
    assert missing.exit_code == 2
    assert "no tenant 'nobody'" in missing.stderr


def test_genq_tenants_budget_sets_and_clears(client, tenant, monkeypatch) -> None:
    from tests.genq.test_cli import runner

    monkeypatch.setenv(
        "GENQ_DATABASE_URL", client.app.state.producer.engine.url.render_as_string(False)
    )
    set_ = runner.invoke(app, ["tenants", "budget", "acme", "--usd", "12.5", "--period", "week"])
    bad = runner.invoke(app, ["tenants", "budget", "acme", "--period", "year"])
    cleared = runner.invoke(app, ["tenants", "budget", tenant.tenant_id])

    assert set_.exit_code == 0 and "$12.50 per week" in set_.stdout
    assert bad.exit_code == 2 and "--period must be one of" in bad.stderr
    assert cleared.exit_code == 0 and "no limit" in cleared.stdout
