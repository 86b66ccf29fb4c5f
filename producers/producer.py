"""The Python producer: submit and read jobs from a service that shares genq's database.

The HTTP API is a thin layer over this class, so both paths behave the same.
"""

import logging
from collections.abc import Sequence
from datetime import datetime

import dramatiq
import redis
from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError

from infra.brokers import make_broker
from infra.db import Timeouts, make_engine, make_sessions
from infra.direct import direct_on
from infra.known_secrets import register_configured
from infra.redis_conn import connect, redis_url
from producers.active_tenants import ActiveTenants
from producers.enqueue_rate import EnqueueRate
from producers.key_cache import TenantKeys
from producers.submit import check
from producers.webhook_test_rate import WebhookTestRate
from schema.clean import bounded_time, text_problem
from schema.errors import FieldError, InvalidInputError, Loc
from schema.jobs import BatchItem, JobCreate, JobStatus, JobView
from schema.routes import Routes, load_routes
from schema.settings import Settings
from schema.tables import OutboxMessage
from schema.usage import GroupBy, UsageReport
from store import job_interventions, jobs, outbox, usage, webhook_endpoints, webhook_targets
from store.budgets import StalePeriodError
from store.sent_marks import SentMarks
from store.submissions import Submission, Submitted, store, store_alone
from store.webhook_secrets import has_default_secret
from store.webhook_targets import EndpointCache
from store.webhooks import Webhooks

logger = logging.getLogger(__name__)


class Producer:
    """Submits jobs for a tenant: validated, idempotent, committed with their outbox rows."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        engine: Engine | None = None,
        broker: dramatiq.Broker | None = None,
        routes: Routes | None = None,
    ) -> None:
        self.settings = settings or Settings()
        self.engine = engine or make_engine(
            self.settings.database_url_value, Timeouts.for_api(self.settings)
        )
        self.sessions = make_sessions(self.engine)
        self.direct = direct_on(self.engine)
        self.broker = broker or make_broker(self.settings, consumer=False)
        self.routes = routes or load_routes(self.settings.routes_file)
        register_configured(self.settings, self.routes)
        url = redis_url(self.settings)
        # Redis for tenant activity, enqueue rate and circuits, whichever the broker is.
        self.redis = connect(url)
        webhook_targets.attach(self.sessions, EndpointCache(self.redis))
        self.active_tenants = ActiveTenants(self.redis)
        self.enqueue_rate = EnqueueRate(url)
        self.webhook_test_rate = WebhookTestRate(url, self.settings.webhook_test_sends_per_minute)
        self.webhooks = Webhooks(self.sessions, self.settings, self._send)
        self.tenant_keys = TenantKeys(self.sessions, self.settings.auth_cache_s)
        self.sent_marks = SentMarks(self.sessions)

    def submit(
        self, tenant_id: str, request: JobCreate, idempotency_key: str | None = None
    ) -> tuple[JobView, bool]:
        """Submit one job; return it and whether it is a replay of an earlier request."""
        if idempotency_key is not None:
            _require_clean(("idempotency_key",), idempotency_key)
        (result,) = self._submit(tenant_id, [Submission(request, idempotency_key)], loc=())
        return jobs.view(result.job), result.replayed

    def submit_batch(self, tenant_id: str, items: Sequence[BatchItem]) -> list[JobView]:
        """Submit up to ``batch_max_jobs`` jobs in one transaction: all are stored or none."""
        if len(items) > self.settings.batch_max_jobs:
            raise InvalidInputError(
                [
                    FieldError(
                        ("jobs",),
                        f"a batch holds at most {self.settings.batch_max_jobs} jobs; "
                        f"got {len(items)}",
                    )
                ]
            )
        submissions = [Submission(item, item.idempotency_key) for item in items]
        return [jobs.view(r.job) for r in self._submit(tenant_id, submissions, loc=("jobs",))]

    def _submit(self, tenant_id: str, submissions: list[Submission], loc: Loc) -> list[Submitted]:
        check(self.routes, submissions, loc, self._vet_webhook_url)
        self._require_webhook_secret(tenant_id, submissions, loc)
        self._count_enqueues(tenant_id, len(submissions))
        try:
            results = self._store(tenant_id, submissions)
        except IntegrityError:
            results = self._store(tenant_id, submissions)
        self._send([r.outbox_row for r in results if r.outbox_row is not None])
        self.active_tenants.mark(tenant_id, {r.job.route for r in results if not r.replayed})
        return results

    def _vet_webhook_url(self, url: str) -> None:
        webhook_endpoints.guard(self.settings, url, self.webhooks.resolve)

    def _require_webhook_secret(
        self, tenant_id: str, submissions: list[Submission], loc: Loc
    ) -> None:
        """A job's own ``webhook_url`` is signed with the tenant's default secret, which
        tenants created before webhooks existed may lack."""
        if not any(s.request.webhook_url for s in submissions):
            return
        with self.sessions() as session:
            if has_default_secret(session, tenant_id):
                return
        message = (
            "the tenant has no default webhook secret; "
            "create one with POST /v1/webhook-secret/rotate"
        )
        raise InvalidInputError([FieldError((*loc, "webhook_url"), message)])

    def _count_enqueues(self, tenant_id: str, jobs: int) -> None:
        """Apply the tenant's enqueue rate; if Redis cannot say, let the jobs in."""
        own = self.tenant_keys.rate(tenant_id)
        try:
            self.enqueue_rate.hit(tenant_id, own or self.settings.tenant_rate_per_minute, jobs)
        except redis.RedisError:
            logger.warning("enqueue rate unavailable; not limiting", exc_info=True)

    def _store(self, tenant_id: str, submissions: list[Submission]) -> list[Submitted]:
        period = self.tenant_keys.budget_period(tenant_id)
        deadline_s = self.settings.job_deadline_s
        if self.direct is not None and period is not None and len(submissions) == 1:
            alone = store_alone(
                self.direct, self.routes, tenant_id, submissions[0], deadline_s, period
            )
            if alone is not None:
                return [alone]
        try:
            with self.sessions.begin() as session:
                return store(session, self.routes, tenant_id, submissions, deadline_s, period)
        except StalePeriodError:
            with self.sessions.begin() as session:
                return store(session, self.routes, tenant_id, submissions, deadline_s)

    def _send(self, rows: list[OutboxMessage]) -> None:
        outbox.send_leaving_marks(self.sessions, self.broker, rows, self.sent_marks.add)

    def get(self, tenant_id: str, job_id: str) -> JobView | None:
        if text_problem(job_id):
            return None
        with self.sessions() as session:
            job = jobs.get(session, tenant_id, job_id)
            return jobs.view(job) if job else None

    def list_jobs(
        self,
        tenant_id: str,
        *,
        status: JobStatus | None = None,
        limit: int = 20,
        cursor: str | None = None,
    ) -> tuple[list[JobView], str | None]:
        with self.sessions() as session:
            page, next_cursor = jobs.page(
                session, tenant_id, status=status, limit=limit, cursor=cursor
            )
            return [jobs.view(job) for job in page], next_cursor

    def cancel(self, tenant_id: str, job_id: str) -> JobView | None:
        """Cancel the tenant's job (``JobNotCancelableError`` if it already ended); None if
        the tenant has no such job."""
        if text_problem(job_id):
            return None
        with self.sessions.begin() as session:
            if jobs.get(session, tenant_id, job_id) is None:
                return None
            moved = job_interventions.cancel(session, self.settings, job_id)
        moved.publish(self.sessions, self.broker)
        return jobs.view(moved.ended[0])

    def usage(
        self, tenant_id: str, start: datetime, end: datetime, group_by: GroupBy
    ) -> UsageReport:
        """Usage in [start, end); ``InvalidInputError`` for times outside genq's bounds."""
        for name, moment in (("from", start), ("to", end)):
            try:
                bounded_time(moment)
            except ValueError as exc:
                raise InvalidInputError([FieldError((name,), str(exc))]) from None
        with self.sessions() as session:
            return usage.report(session, tenant_id, start, end, group_by)

    def close(self) -> None:
        self.sent_marks.close()
        self.engine.dispose()
        self.broker.close()
        self.redis.close()


def _require_clean(loc: Loc, text: str) -> None:
    problem = text_problem(text)
    if problem is not None:
        raise InvalidInputError([FieldError(loc, problem)])
