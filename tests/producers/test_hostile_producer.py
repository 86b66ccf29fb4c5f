"""Hostile input through the Python producer: the same rules as the API, nothing written."""

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from producers import Producer
from schema.errors import InvalidInputError
from schema.jobs import BatchItem, JobCreate
from store.cursors import InvalidCursorError
from tests.producers.hostile import BAD_TEXT, Ledger, nested
from tests.producers.test_hostile_jobs import CHAT, forged, with_input


def invalid(**body: object) -> ValidationError:
    with pytest.raises(ValidationError) as raised:
        JobCreate(**body)  # type: ignore[arg-type]
    return raised.value


@pytest.mark.parametrize("bad", BAD_TEXT)
def test_text_that_cannot_be_stored_is_refused(bad: str) -> None:
    cases = [
        (with_input(messages=[{"role": "user", "content": bad}]), "input", "messages.0.content"),
        ({**CHAT, "metadata": {"note": bad}}, "metadata", "note"),
        ({**CHAT, "model": f"openai/{bad}x"}, "model", ""),
    ]
    for body, field, where in cases:
        (error,) = invalid(**body).errors()
        assert error["loc"] == (field,)
        assert where in error["msg"]
    with pytest.raises(ValidationError):
        BatchItem(**CHAT, idempotency_key=f"k{bad}")  # type: ignore[arg-type]


@pytest.mark.parametrize("value", [float("nan"), float("inf"), 2**64, {1, 2}, b"x", nested(40)])
def test_values_that_are_not_plain_json_are_refused(value: object) -> None:
    assert invalid(**with_input(extra=value)).errors()[0]["loc"] == ("input",)
    if not isinstance(value, set | list | bytes):  # metadata takes bytes as text
        assert invalid(**{**CHAT, "metadata": {"k": value}}).errors()[0]["loc"] == ("metadata",)


def test_submit_refuses_bounds_keys_ids_cursors_and_times(
    producer: Producer, tenant, ledger: Ledger
) -> None:
    before = ledger.snapshot()
    me = tenant.tenant_id

    with pytest.raises(InvalidInputError) as raised:
        producer.submit(me, JobCreate(**with_input(max_completion_tokens=2**40)))
    assert raised.value.errors[0].loc == ("input", "max_completion_tokens")
    with pytest.raises(InvalidInputError) as raised:
        producer.submit(me, JobCreate(**CHAT), idempotency_key="k\x00")
    assert raised.value.errors[0].loc == ("idempotency_key",)
    assert producer.get(me, "job_\x00") is None
    assert producer.cancel(me, "job_\x00") is None
    with pytest.raises(InvalidCursorError):
        producer.list_jobs(me, cursor=forged("0001-01-01T00:00:00+14:00", "job_1"))
    with pytest.raises(InvalidInputError) as raised:
        producer.usage(me, datetime(1, 1, 1, tzinfo=UTC), datetime.now(UTC), "model")  # type: ignore[arg-type]
    assert raised.value.errors[0].loc == ("from",)
    assert ledger.snapshot() == before


def test_a_job_that_would_not_encode_is_never_committed(
    producer: Producer, tenant, ledger: Ledger
) -> None:
    before = ledger.snapshot()
    unchecked = JobCreate.model_construct(
        **{**CHAT, "metadata": {"note": "\ud83d"}, "cache": True, "deadline_s": None}
    )

    with pytest.raises(InvalidInputError) as raised:
        producer.submit(tenant.tenant_id, unchecked)

    assert "cannot be encoded" in str(raised.value)
    assert ledger.snapshot() == before
