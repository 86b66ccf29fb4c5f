"""Dead letters for the on-call engineer: ``genq dlq …`` and the operations under it, on
real dead letters from the worker, Dramatiq's own dead-letter queue, and the audit log."""

import json
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from dramatiq import Message
from sqlalchemy import Engine, select
from typer.testing import CliRunner

from genq.cli import app
from schema.deadletters import ActionResult, DLQFilter, parse_since
from schema.jobs import JobCreate, JobStatus
from schema.names import JOBS_QUEUE, RUN_JOB
from schema.tables import AuditEntry, DeadLetter, Job, JobAttempt, utcnow
from store import budgets, deadletters, dlq
from store.submissions import Submission, store
from tests.helpers import override
from tests.producers.test_api import CHAT
from tests.store.test_budgets import period
from tests.waiting import eventually
from tests.workers.test_worker import attempts_of, job_of

runner = CliRunner()
SECRET = "sk-proj-abcdefghijklmnop1234"
XQ = f"genq:{JOBS_QUEUE}.XQ"


def genq(*args: str):  # type: ignore[no-untyped-def]
    return runner.invoke(app, list(args))


def dead_letter_through_the_worker(client, auth, routes, sim_control) -> tuple[str, str]:
    """A chat job the worker dead-letters (one attempt, 503); the fault is cleared after."""
    override(routes, "openai", max_attempts=1)
    sim_control.faults({"endpoint": "chat.completions", "kind": "status", "code": 503})
    job_id = client.post("/v1/jobs", json=CHAT, headers=auth).json()["id"]
    job_of(client, auth, job_id, {"dead_lettered"})
    sim_control.faults()
    return job_id, letter_of(client.app.state.producer, job_id).id


def letter_of(producer, job_id: str) -> DeadLetter:
    with producer.sessions() as session:
        return session.scalars(select(DeadLetter).where(DeadLetter.job_id == job_id)).one()


def stored_letter(
    producer,
    tenant_id: str,
    *,
    model: str = "openai/gpt-4o-mini",
    served_by: str | None = None,
    error_class: str = "server_error",
    message: str = "HTTP 503 from the provider",
) -> tuple[str, str]:
    """A job dead-lettered as the worker leaves one (attempt row, reservation released),
    without running a worker; return the job and letter ids."""
    request = JobCreate(model=model, input=CHAT["input"])
    with producer.sessions.begin() as session:
        (submitted,) = store(session, producer.routes, tenant_id, [Submission(request, None)])
        job = session.get_one(Job, submitted.job.id)
        now = utcnow()
        session.add(
            JobAttempt(
                job_id=job.id,
                number=1,
                route=(served_by or model).partition("/")[0],
                model=served_by or model,
                status="failed",
                error_class=error_class,
                error_message=message,
                http_status=503,
                latency_ms=5,
                started_at=now,
                finished_at=now,
            )
        )
        budgets.settle(
            session, tenant_id, job.budget_period_start, released_micros=job.reserved_micros
        )
        job.status = JobStatus.DEAD_LETTERED
        job.current_model = served_by or model
        job.route = job.current_model.partition("/")[0]
        job.attempts = job.route_attempts = 1
        job.reserved_micros = 0
        job.error = {"type": error_class, "message": message}
        job.finished_at = now
        letter = deadletters.record_job(session, job.id, error_class, message)
        return job.id, letter.id


def audit_entries(engine: Engine) -> list[AuditEntry]:
    with engine.connect() as connection:
        return list(connection.execute(select(AuditEntry).order_by(AuditEntry.id)))


def test_a_dead_lettered_job_is_listed_filtered_and_shown_with_its_history(
    cli_env, client, auth, routes, sim_control, worker
) -> None:
    job_id, letter_id = dead_letter_through_the_worker(client, auth, routes, sim_control)

    listed = genq("dlq", "list")
    assert listed.exit_code == 0, listed.output
    assert letter_id in listed.stdout
    assert "server_error" in listed.stdout
    for matching in (["--route", "openai"], ["--tenant", "acme"], ["--since", "1h"]):
        assert letter_id in genq("dlq", "list", "--error-class", "server_error", *matching).stdout
    for other in (
        ["--route", "anthropic"],
        ["--since", "2999-01-01T00:00"],
        ["--status", "purged"],
    ):
        result = genq("dlq", "list", *other)
        assert result.exit_code == 0
        assert letter_id not in result.stdout

    shown = genq("dlq", "show", letter_id)
    assert shown.exit_code == 0
    letter = json.loads(shown.stdout)
    assert (letter["job_id"], letter["job_status"], letter["tenant_name"]) == (
        job_id,
        "dead_lettered",
        "acme",
    )
    (attempt,) = letter["attempts"]
    assert (attempt["status"], attempt["error_class"], attempt["http_status"]) == (
        "failed",
        "server_error",
        503,
    )


def test_requeue_from_the_cli_runs_the_job_to_success_and_is_audited(
    cli_env, client, auth, tenant, routes, sim_control, worker, runtime
) -> None:
    job_id, letter_id = dead_letter_through_the_worker(client, auth, routes, sim_control)

    result = genq("dlq", "requeue", letter_id, "--actor", "alice")

    assert result.exit_code == 0, result.output
    assert "requeued 1 letter" in result.stdout
    assert job_of(client, auth, job_id, {"succeeded", "failed", "dead_lettered"})["status"] == (
        "succeeded"
    )
    assert [a.status for a in attempts_of(runtime, job_id)] == ["failed", "succeeded"]
    assert json.loads(genq("dlq", "show", letter_id).stdout)["status"] == "requeued"
    (entry,) = audit_entries(cli_env)
    assert (entry.actor, entry.action, entry.filter, entry.targets, entry.dry_run) == (
        "alice",
        "requeue",
        {"ids": [letter_id]},
        [letter_id],
        False,
    )
    assert "alice" in genq("dlq", "audit").stdout
    folded = period(runtime.engine, tenant.tenant_id)
    assert (folded.reserved_micros, folded.spent_micros > 0) == (0, True)


def test_concurrent_requeues_of_one_letter_run_the_job_once(
    client, auth, routes, sim_control, worker, runtime, producer
) -> None:
    job_id, letter_id = dead_letter_through_the_worker(client, auth, routes, sim_control)
    start = threading.Barrier(2)
    results: list[ActionResult] = []

    def requeue(actor: str) -> None:
        start.wait()
        results.append(dlq.requeue(producer.sessions, producer.broker, routes, [letter_id], actor))

    threads = [threading.Thread(target=requeue, args=(f"op{n}",)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(r.count for r in results) == [0, 1]
    assert {reason for r in results for reason in r.skipped.values()} == {"already requeued"}
    assert job_of(client, auth, job_id, {"succeeded"})["attempts"] == 2
    runtime.broker.join(JOBS_QUEUE, timeout=10_000)
    worker.join()
    assert sim_control.calls("chat.completions") == 2
    assert len(attempts_of(runtime, job_id)) == 2


def test_a_filter_acts_only_with_yes_and_a_dry_run_changes_nothing_but_is_audited(
    cli_env, producer, tenant
) -> None:
    job_id, letter_id = stored_letter(producer, tenant.tenant_id)

    refused = genq("dlq", "requeue", "--route", "openai")
    assert refused.exit_code == 2
    assert "--dry-run" in refused.stderr and "--yes" in refused.stderr

    dry = genq("dlq", "requeue", "--route", "openai", "--dry-run", "--actor", "bob")
    assert dry.exit_code == 0, dry.output
    assert "dry run: would requeue 1 letter" in dry.stdout
    assert json.loads(genq("dlq", "show", letter_id).stdout)["status"] == "open"
    (entry,) = audit_entries(cli_env)
    assert (entry.actor, entry.filter, entry.targets, entry.count, entry.dry_run) == (
        "bob",
        {"route": "openai", "status": "open"},
        [letter_id],
        1,
        True,
    )

    done = genq("dlq", "requeue", "--route", "openai", "--yes")
    assert done.exit_code == 0, done.output
    assert "requeued 1 letter" in done.stdout
    with producer.sessions() as session:
        job = session.get_one(Job, job_id)
        assert (job.status, job.route_attempts, job.attempts, job.error) == ("queued", 0, 1, None)
    assert audit_entries(cli_env)[-1].actor.startswith("cli:")


def test_requeue_starts_over_from_the_requested_model_past_the_budget(
    engine, producer, tenant, routes
) -> None:
    job_id, letter_id = stored_letter(
        producer, tenant.tenant_id, served_by="anthropic/claude-haiku-4-5"
    )
    budgets.set_budget(engine, tenant.tenant_id, 1, "month")

    result = dlq.requeue(producer.sessions, producer.broker, routes, [letter_id], "ops")

    assert result.targets == [letter_id]
    with producer.sessions() as session:
        job = session.get_one(Job, job_id)
        assert (job.status, job.current_model, job.route) == ("queued", job.model, "openai")
        assert job.reserved_micros > 0
        assert period(engine, tenant.tenant_id).reserved_micros == job.reserved_micros
        letter = session.get_one(DeadLetter, letter_id)
        assert (letter.status, letter.resolved_at is not None) == ("requeued", True)


def test_purge_needs_yes_and_keeps_the_letter_and_its_job(cli_env, producer, tenant) -> None:
    job_id, letter_id = stored_letter(producer, tenant.tenant_id)

    assert genq("dlq", "purge", "--error-class", "server_error").exit_code == 2
    purged = genq("dlq", "purge", "--error-class", "server_error", "--yes")

    assert purged.exit_code == 0, purged.output
    assert "purged 1 letter" in purged.stdout
    assert letter_id not in genq("dlq", "list").stdout
    assert letter_id in genq("dlq", "list", "--status", "purged").stdout
    assert "already purged" in genq("dlq", "requeue", letter_id).stdout
    with producer.sessions() as session:
        assert session.get_one(Job, job_id).status == "dead_lettered"
    assert [(e.action, e.count) for e in audit_entries(cli_env)] == [("purge", 1), ("requeue", 0)]


def test_show_scrubs_secrets_from_the_error_and_the_attempt_history(
    cli_env, producer, tenant
) -> None:
    message = f"401 from upstream: Incorrect API key provided: {SECRET}"
    _, letter_id = stored_letter(producer, tenant.tenant_id, message=message)

    shown = genq("dlq", "show", letter_id)

    assert shown.exit_code == 0
    assert SECRET not in shown.stdout
    letter = json.loads(shown.stdout)
    assert "[redacted]" in letter["error_message"]
    assert "[redacted]" in letter["attempts"][0]["error_message"]


def test_dramatiq_dead_letters_are_imported_listed_and_requeued(
    cli_env, client, auth, producer, tenant, runtime, worker
) -> None:
    request = JobCreate(**CHAT)
    with producer.sessions.begin() as session:  # stored, its message never sent
        (submitted,) = store(
            session, producer.routes, tenant.tenant_id, [Submission(request, None)]
        )
    job_id = submitted.job.id
    an_hour_ago = int(time.time() * 1000) - 3_600_000
    too_old = Message(JOBS_QUEUE, RUN_JOB, (), {"job_id": job_id}, {"max_age": 60_000})
    runtime.broker.enqueue(too_old._replace(message_timestamp=an_hour_ago))
    runtime.broker.enqueue(Message(JOBS_QUEUE, "no_such_actor", (), {"token": SECRET}, {}))
    eventually(lambda: runtime.broker.client.zcard(XQ), lambda n: n == 2)

    listed = genq("dlq", "list", "--source", "dramatiq")

    assert listed.exit_code == 0, listed.output
    assert (runtime.broker.client.zcard(XQ), runtime.broker.client.hlen(f"{XQ}.msgs")) == (0, 0)
    assert "dramatiq:no_such_actor" in listed.stdout and f"dramatiq:{RUN_JOB}" in listed.stdout
    assert "age limit of 60000 ms" in listed.stdout
    with producer.sessions() as session:
        found, _ = dlq.list_letters(session, DLQFilter(source="dramatiq"))
    by_actor = {letter.actor_name: letter for letter in found}
    assert (by_actor[RUN_JOB].job_id, by_actor[RUN_JOB].tenant_name) == (job_id, "acme")
    assert by_actor["no_such_actor"].message["kwargs"] == {"token": "[redacted]"}
    assert by_actor["no_such_actor"].error_class == "dramatiq_dead_letter"

    requeued = genq("dlq", "requeue", by_actor[RUN_JOB].id)

    assert requeued.exit_code == 0, requeued.output
    assert job_of(client, auth, job_id, {"succeeded"})["status"] == "succeeded"
    assert genq("dlq", "list", "--source", "dramatiq").stdout.count("dlq_") == 1


def test_stats_count_by_route_and_error_class(cli_env, producer, tenant) -> None:
    for _ in range(2):
        stored_letter(producer, tenant.tenant_id)
    _, auth_letter = stored_letter(
        producer, tenant.tenant_id, model="anthropic/claude-haiku-4-5", error_class="auth_error"
    )
    with producer.sessions.begin() as session:
        dlq.purge(session, [auth_letter], "ops")

    with producer.sessions() as session:
        found = dlq.stats(session, utcnow() - timedelta(hours=1))

    assert (found.total, found.open) == (3, 2)
    assert [(r.key, r.count, r.open) for r in found.by_route] == [
        ("openai", 2, 2),
        ("anthropic", 1, 0),
    ]
    assert [r.key for r in found.by_error_class] == ["server_error", "auth_error"]
    assert sum(b.count for b in found.over_time) == 3
    printed = genq("dlq", "stats", "--since", "1h", "--bucket", "day")
    assert printed.exit_code == 0, printed.output
    assert "3 dead letters" in printed.stdout and "2 still open" in printed.stdout
    assert "auth_error" in printed.stdout and "anthropic" in printed.stdout


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["show", "dlq_missing"], "no dead letter 'dlq_missing'"),
        (["requeue", "dlq_missing"], "no dead letter 'dlq_missing'"),
        (["purge", "dlq_missing"], "no dead letter 'dlq_missing'"),
        (["requeue"], "name letter ids"),
        (["requeue", "dlq_x", "--route", "openai"], "not both"),
        (["list", "--since", "yesterday"], "--since"),
        (["list", "--tenant", "nobody"], "no tenant 'nobody'"),
        (["list", "--cursor", "garbage"], "cursor"),
        (["list", "--status", "lost"], "Invalid value"),
        (["stats", "--since", "2 days"], "--since"),
    ],
)
def test_bad_input_exits_2_with_a_message(cli_env, args, says) -> None:
    result = genq("dlq", *args)

    assert result.exit_code == 2, result.output
    assert says in result.stderr


def test_since_takes_a_duration_or_an_iso_time() -> None:
    now = datetime(2026, 3, 1, 12, tzinfo=UTC)

    assert parse_since("2h", now) == now - timedelta(hours=2)
    assert parse_since("3d", now) == now - timedelta(days=3)
    assert parse_since("2026-01-01T00:00") == datetime(2026, 1, 1, tzinfo=UTC)
    assert parse_since("2026-01-01T01:00+01:00") == datetime(2026, 1, 1, tzinfo=UTC)
    with pytest.raises(ValueError, match="duration"):
        parse_since("soon")
