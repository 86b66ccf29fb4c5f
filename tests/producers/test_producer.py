"""The Python producer: the same submission rules as the API, without HTTP."""

import pytest

from producers import Producer
from schema.errors import InvalidInputError
from schema.jobs import BatchItem, JobCreate, JobStatus
from store.submissions import IdempotencyConflictError
from tests.producers.test_api import CHAT, counts
from tests.waiting import eventually
from tests.workers.test_worker import attempts_of


def test_submit_is_idempotent_and_runs_on_the_worker(producer: Producer, tenant, worker, runtime):
    request = JobCreate(**CHAT)
    job, replayed = producer.submit(tenant.tenant_id, request, idempotency_key="p-1")
    again, replayed_again = producer.submit(tenant.tenant_id, request, idempotency_key="p-1")

    assert (replayed, replayed_again) == (False, True)
    assert again.id == job.id
    done = eventually(
        lambda: producer.get(tenant.tenant_id, job.id), lambda j: j.status == "succeeded"
    )
    assert done.usage["total_tokens"] > 0
    assert len(attempts_of(runtime, job.id)) == 1


def test_submit_refuses_what_the_api_refuses(producer: Producer, tenant, engine) -> None:
    with pytest.raises(InvalidInputError) as invalid:
        producer.submit(tenant.tenant_id, JobCreate(**{**CHAT, "model": "openai/gpt-9"}))
    assert invalid.value.errors[0].loc == ("model",)

    producer.submit(tenant.tenant_id, JobCreate(**CHAT), idempotency_key="k")
    with pytest.raises(IdempotencyConflictError):
        producer.submit(
            tenant.tenant_id, JobCreate(**{**CHAT, "metadata": {"x": 1}}), idempotency_key="k"
        )
    assert counts(engine) == (1, 1)


def test_batch_list_and_cancel(producer: Producer, tenant) -> None:
    made = producer.submit_batch(tenant.tenant_id, [BatchItem(**CHAT) for _ in range(3)])
    canceled = producer.cancel(tenant.tenant_id, made[0].id)

    assert canceled is not None and canceled.status == JobStatus.CANCELED
    queued, cursor = producer.list_jobs(tenant.tenant_id, status=JobStatus.QUEUED)
    assert {job.id for job in queued} == {job.id for job in made[1:]}
    assert cursor is None
    assert producer.get("ten_someone_else", made[1].id) is None
