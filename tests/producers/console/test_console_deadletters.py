"""Dead letters in the console without a browser: a dry run on chosen letters or on a
filter, then acting on exactly the letters it showed, with progress; all audited."""

import re

from sqlalchemy import Engine, select

from infra.db import make_sessions
from schema.tables import AuditEntry, DeadLetter, utcnow
from store.ids import new_id
from tests.waiting import eventually

PLAN = re.compile(r'name="plan" value="([0-9a-f]+)"')


def letters(engine: Engine, *error_classes: str) -> list[str]:
    ids = []
    with make_sessions(engine).begin() as session:
        for error_class in error_classes:
            ids.append(new_id("dlq"))
            session.add(
                DeadLetter(
                    id=ids[-1],
                    source="dramatiq",
                    route="openai",
                    queue_name="genq.jobs",
                    actor_name="run_job",
                    error_class=error_class,
                    error_message=f"{error_class}: upstream said no",
                    message={"queue_name": "genq.jobs", "actor_name": "run_job", "kwargs": {}},
                    first_failed_at=utcnow(),
                    last_failed_at=utcnow(),
                )
            )
    return ids


def statuses(engine: Engine) -> dict[str, str]:
    with make_sessions(engine)() as session:
        return dict(session.execute(select(DeadLetter.id, DeadLetter.status)).all())


def test_a_dry_run_on_chosen_letters_then_a_purge_of_exactly_those(client, as_role, engine) -> None:
    csrf = as_role("operator")
    first, second, third = letters(engine, "server_error", "server_error", "timeout")

    plan = client.post(
        "/console/dead-letters/dry-run",
        data={"csrf": csrf, "scope": "selected", "action": "purge", "ids": [first, third]},
    )
    assert 'class="would-move">2<' in plan.text
    assert statuses(engine) == {first: "open", second: "open", third: "open"}
    plan_id = PLAN.search(plan.text)[1]  # type: ignore[index]

    started = client.post("/console/dead-letters/act", data={"csrf": csrf, "plan": plan_id})
    assert started.status_code == 200
    eventually(
        lambda: client.get(f"/console/dead-letters/plans/{plan_id}").text,
        lambda html: '<span class="state">done</span>' in html,
    )
    assert statuses(engine) == {first: "purged", second: "open", third: "purged"}
    again = client.post("/console/dead-letters/act", data={"csrf": csrf, "plan": plan_id})
    assert "expired or already ran" in again.text

    with make_sessions(engine)() as session:
        audit = session.execute(
            select(AuditEntry.actor, AuditEntry.action, AuditEntry.dry_run, AuditEntry.count)
        ).all()
    assert sorted(audit) == [
        ("admin:operator-alice", "purge", False, 2),
        ("admin:operator-alice", "purge", True, 2),
    ]


def test_a_filter_with_error_text_chooses_the_matching_letters(client, as_role, engine) -> None:
    csrf = as_role("operator")
    letters(engine, "server_error", "timeout", "timeout")

    listed = client.get("/console/dead-letters?text=TIMEOUT:+upstream").text
    plan = client.post(
        "/console/dead-letters/dry-run",
        data={"csrf": csrf, "scope": "matching", "action": "requeue", "text": "timeout: up"},
    )

    assert listed.count('class="letter"') == 2
    assert 'class="would-move">2<' in plan.text


def test_a_bad_filter_is_explained_not_acted_on(client, as_role, engine) -> None:
    csrf = as_role("operator")
    letters(engine, "server_error")

    page = client.get("/console/dead-letters?since=yesterday")
    plan = client.post(
        "/console/dead-letters/dry-run",
        data={"csrf": csrf, "scope": "matching", "tenant": "nobody"},
    )

    assert page.status_code == 200 and "since must be a duration" in page.text
    assert 'class="letter"' not in page.text
    assert "no tenant" in plan.text
    assert "would-move" not in plan.text
