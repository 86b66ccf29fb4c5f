"""Operations on dead letters for the on-call engineer: find them, read them, count them,
requeue or purge them. The command line and the admin API both call these functions.

Every action, dry runs included, writes an audit entry in the transaction that acts, so
the log holds exactly what happened. Letters are never deleted: a purge only marks them.

Requeueing a job letter starts the job over from the model it asked for, with a fresh
attempt budget on each route; its attempt history stays. The job's maximum cost is
reserved again *without* the budget check: an operator's requeue is a decision the
tenant's budget must not refuse. The reservation still counts, so the tenant's own new
jobs meet the limit, and the worker settles it to the real cost as usual. A job's
deadline is the customer's and stays: a job requeued past it fails at once.
"""

import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, get_args

import dramatiq
from sqlalchemy import ColumnElement, case, func, literal_column, select, update
from sqlalchemy.orm import Session, sessionmaker

from schema.deadletters import (
    ActionResult,
    AuditView,
    Bucket,
    DLQFilter,
    DLQStats,
    LetterView,
    StatsBucket,
    StatsRow,
    Target,
)
from schema.errors import NotFoundError, RequestError
from schema.routes import Routes
from schema.tables import (
    AuditEntry,
    DeadLetter,
    Job,
    OutboxMessage,
    Tenant,
    utcnow,
)
from store import job_interventions, outbox
from store.cursors import after, encode_cursor
from store.tenants import find_tenant

logger = logging.getLogger(__name__)


_CHUNK = 500


class SelectionError(RequestError, ValueError):
    """A filter or a list of ids that cannot select anything; ``field`` names the culprit."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class LetterNotFoundError(NotFoundError):
    """Some named dead letters do not exist."""

    def __init__(self, ids: Sequence[str]) -> None:
        super().__init__("no dead letter " + ", ".join(repr(i) for i in ids))
        self.ids = list(ids)


def _tenant_id(session: Session, ref: str) -> str:
    tenant = find_tenant(session, ref)
    if tenant is None:
        raise SelectionError("tenant", f"no tenant {ref!r}")
    return tenant.id


def _conditions(session: Session, letters: DLQFilter) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if letters.status != "all":
        conditions.append(DeadLetter.status == letters.status)
    if letters.route is not None:
        conditions.append(DeadLetter.route == letters.route)
    if letters.tenant is not None:
        conditions.append(DeadLetter.tenant_id == _tenant_id(session, letters.tenant))
    if letters.error_class is not None:
        conditions.append(DeadLetter.error_class == letters.error_class)
    if letters.source is not None:
        conditions.append(DeadLetter.source == letters.source)
    if letters.since is not None:
        conditions.append(DeadLetter.last_failed_at >= letters.since)
    if letters.text is not None:
        conditions.append(
            func.lower(DeadLetter.error_message).contains(letters.text.lower(), autoescape=True)
        )
    return conditions


_VIEWED = (
    select(DeadLetter, Tenant.name, Job.status)
    .outerjoin(Tenant, Tenant.id == DeadLetter.tenant_id)
    .outerjoin(Job, Job.id == DeadLetter.job_id)
)


def _view(letter: DeadLetter, tenant_name: str | None, job_status: str | None) -> LetterView:
    view = LetterView.model_validate(letter)
    return view.model_copy(update={"tenant_name": tenant_name, "job_status": job_status})


def list_letters(
    session: Session, letters: DLQFilter, limit: int = 50, cursor: str | None = None
) -> tuple[list[LetterView], str | None]:
    """Matching letters, most recent failure first; return a page and the next page's cursor."""
    query = _VIEWED.where(*_conditions(session, letters))
    if cursor:
        query = query.where(after(cursor, DeadLetter.last_failed_at, DeadLetter.id))
    order = (DeadLetter.last_failed_at.desc(), DeadLetter.id.desc())
    page = [_view(*row) for row in session.execute(query.order_by(*order).limit(limit + 1))]
    if len(page) > limit:
        last = page[limit - 1]
        return page[:limit], encode_cursor(last.last_failed_at, last.id)
    return page, None


def get_letter(session: Session, letter_id: str) -> LetterView | None:
    row = session.execute(_VIEWED.where(DeadLetter.id == letter_id)).one_or_none()
    return _view(*row) if row else None


def _bucket_start(session: Session, bucket: Bucket) -> ColumnElement[Any]:
    if session.get_bind().dialect.name == "postgresql":
        return func.date_trunc(literal_column(f"'{bucket}'"), DeadLetter.last_failed_at)
    pattern = "%Y-%m-%d %H:00:00" if bucket == "hour" else "%Y-%m-%d 00:00:00"
    return func.strftime(literal_column(f"'{pattern}'"), DeadLetter.last_failed_at)


def _as_utc(value: datetime | str) -> datetime:
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _rows(counts: dict[str, list[int]]) -> list[StatsRow]:
    ranked = sorted(counts.items(), key=lambda item: (-item[1][0], item[0]))
    return [StatsRow(key=key, count=count, open=still) for key, (count, still) in ranked]


def stats(session: Session, since: datetime, bucket: Bucket = "hour") -> DLQStats:
    """Letters that last failed since ``since``, by route, by error class and over time."""
    if bucket not in get_args(Bucket):
        raise ValueError(f"bucket must be one of {', '.join(get_args(Bucket))}")
    recent = DeadLetter.last_failed_at >= since
    still_open = func.sum(case((DeadLetter.status == "open", 1), else_=0))
    groups = session.execute(
        select(DeadLetter.route, DeadLetter.error_class, func.count(), still_open)
        .where(recent)
        .group_by(DeadLetter.route, DeadLetter.error_class)
    ).all()
    by_route: dict[str, list[int]] = {}
    by_error: dict[str, list[int]] = {}
    for route, error_class, count, open_count in groups:
        for table, key in ((by_route, route or "-"), (by_error, error_class)):
            totals = table.setdefault(key, [0, 0])
            totals[0] += count
            totals[1] += open_count or 0
    start = _bucket_start(session, bucket)
    buckets = session.execute(
        select(start, func.count()).where(recent).group_by(start).order_by(start)
    ).all()
    return DLQStats(
        since=since,
        bucket=bucket,
        total=sum(row[2] for row in groups),
        open=sum(row[3] or 0 for row in groups),
        by_route=_rows(by_route),
        by_error_class=_rows(by_error),
        over_time=[StatsBucket(start=_as_utc(at), count=count) for at, count in buckets],
    )


def group_counts(session: Session, letters: DLQFilter) -> dict[str, list[StatsRow]]:
    """Letters matching ``letters`` counted by route, by error class and by tenant."""
    conditions = _conditions(session, letters)
    still_open = func.sum(case((DeadLetter.status == "open", 1), else_=0))
    groups: dict[str, list[StatsRow]] = {}
    for label, column in (
        ("route", DeadLetter.route),
        ("error class", DeadLetter.error_class),
        ("tenant", Tenant.name),
    ):
        counts = session.execute(
            select(column, func.count(), still_open)
            .select_from(DeadLetter)
            .outerjoin(Tenant, Tenant.id == DeadLetter.tenant_id)
            .where(*conditions)
            .group_by(column)
        )
        groups[label] = _rows({key or "-": [n, o or 0] for key, n, o in counts})
    return groups


def recent_audit(
    session: Session, limit: int = 50, *, actor: str | None = None, action: str | None = None
) -> list[AuditView]:
    """The newest audit entries first; ``actor`` and ``action`` match a part, any case."""
    query = select(AuditEntry)
    for column, wanted in ((AuditEntry.actor, actor), (AuditEntry.action, action)):
        if wanted:
            query = query.where(func.lower(column).contains(wanted.lower(), autoescape=True))
    entries = session.scalars(
        query.order_by(AuditEntry.at.desc(), AuditEntry.id.desc()).limit(limit)
    )
    return [AuditView.model_validate(entry) for entry in entries]


def record(
    session: Session, actor: str, action: str, about: dict[str, Any], targets: list[str]
) -> None:
    """Write an audit entry for an operator's action outside the dead-letter queue."""
    session.add(
        AuditEntry(
            actor=actor,
            action=action,
            filter=about,
            targets=targets,
            count=len(targets),
            at=utcnow(),
        )
    )


def _resolve(session: Session, target: Target) -> tuple[list[str], dict[str, str]]:
    """The open letters ``target`` names, and why any other named letter is passed over."""
    if isinstance(target, DLQFilter):
        if target.status != "open":
            raise SelectionError("status", "only open letters can be requeued or purged")
        query = select(DeadLetter.id).where(*_conditions(session, target))
        return list(session.scalars(query.order_by(DeadLetter.last_failed_at))), {}
    ids = list(dict.fromkeys(target))
    if not ids:
        raise SelectionError("ids", "name at least one dead letter id, or give a filter")
    found: dict[str, str] = {
        letter_id: status
        for letter_id, status in session.execute(
            select(DeadLetter.id, DeadLetter.status).where(DeadLetter.id.in_(ids))
        )
    }
    missing = [i for i in ids if i not in found]
    if missing:
        raise LetterNotFoundError(missing)
    skipped = {i: f"already {found[i]}" for i in ids if found[i] != "open"}
    return [i for i in ids if i not in skipped], skipped


def _audit(
    session: Session, actor: str, action: str, target: Target, targets: list[str], dry_run: bool
) -> None:
    used = target.describe() if isinstance(target, DLQFilter) else {"ids": list(target)}
    session.add(
        AuditEntry(
            actor=actor,
            action=action,
            filter=used,
            targets=targets,
            count=len(targets),
            dry_run=dry_run,
            at=utcnow(),
        )
    )


def _resend(session: Session, message: dict[str, Any] | None) -> OutboxMessage | str:
    """Stage a raw Dramatiq letter's message again, on its queue, as a fresh message.

    Its kwargs are the stored ones, scrubbed of secrets; genq's own actors take only ids.
    """
    if not message or not message.get("actor_name") or not message.get("queue_name"):
        return "its message could not be decoded"
    if message.get("args"):
        return "its message has positional arguments; genq resends keyword arguments only"
    return outbox.stage(
        session, message["queue_name"], message["actor_name"], message.get("kwargs") or {}
    )


def _requeue_one(session: Session, routes: Routes, letter_id: str) -> OutboxMessage | str:
    """Claim the letter with a conditional UPDATE, so concurrent requeues act once."""
    claimed = session.execute(
        update(DeadLetter)
        .where(DeadLetter.id == letter_id, DeadLetter.status == "open")
        .values(status="requeued", resolved_at=utcnow())
        .returning(DeadLetter.source, DeadLetter.job_id, DeadLetter.message)
    ).one_or_none()
    if claimed is None:
        status = session.scalar(select(DeadLetter.status).where(DeadLetter.id == letter_id))
        return f"already {status}"
    source, job_id, message = claimed
    if source == "job":
        outcome = job_interventions.restart(session, routes, job_id)
    else:
        outcome = _resend(session, message)
    if isinstance(outcome, str):
        session.execute(
            update(DeadLetter)
            .where(DeadLetter.id == letter_id)
            .values(status="open", resolved_at=None)
        )
    return outcome


def requeue(
    sessions: sessionmaker[Session],
    broker: dramatiq.Broker,
    routes: Routes,
    target: Target,
    actor: str,
    *,
    dry_run: bool = False,
) -> ActionResult:
    """Requeue the open letters ``target`` names: a job starts over, a raw message is sent
    again. Letters, jobs, outbox rows and the audit entry change in one transaction; the
    messages go out after commit (or with the outbox relay if the broker is down).
    """
    with sessions() as session:
        ids, skipped = _resolve(session, target)
    if dry_run:
        with sessions.begin() as session:
            _audit(session, actor, "requeue", target, ids, dry_run=True)
        return ActionResult(action="requeue", dry_run=True, targets=ids, skipped=skipped)
    done: list[str] = []
    rows: list[OutboxMessage] = []
    with sessions.begin() as session:
        for letter_id in ids:
            outcome = _requeue_one(session, routes, letter_id)
            if isinstance(outcome, str):
                skipped[letter_id] = outcome
            else:
                done.append(letter_id)
                rows.append(outcome)
        session.flush()
        _audit(session, actor, "requeue", target, done, dry_run=False)
    outbox.send_after_commit(sessions, broker, rows)
    return ActionResult(action="requeue", dry_run=False, targets=done, skipped=skipped)


def purge(session: Session, target: Target, actor: str, *, dry_run: bool = False) -> ActionResult:
    """Mark the open letters ``target`` names as purged, in the caller's transaction.

    The rows stay for the audit trail, and their jobs stay as they are.
    """
    ids, skipped = _resolve(session, target)
    if not dry_run:
        purged: set[str] = set()
        for at in range(0, len(ids), _CHUNK):
            purged.update(
                session.execute(
                    update(DeadLetter)
                    .where(DeadLetter.id.in_(ids[at : at + _CHUNK]), DeadLetter.status == "open")
                    .values(status="purged", resolved_at=utcnow())
                    .returning(DeadLetter.id)
                    .execution_options(synchronize_session=False)
                ).scalars()
            )
        skipped |= {i: "no longer open" for i in ids if i not in purged}
        ids = [i for i in ids if i in purged]
    _audit(session, actor, "purge", target, ids, dry_run)
    return ActionResult(action="purge", dry_run=dry_run, targets=ids, skipped=skipped)
