"""Outbox rows the producer sent are marked in batches off its path: the marks land, a
failed mark is tried again, and rows whose marks never landed are sent by the relay."""

import pytest
from dramatiq.brokers.stub import StubBroker
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from infra.db import make_sessions
from schema.tables import OutboxMessage
from store import outbox
from store.sent_marks import SentMarks
from tests.waiting import eventually


def staged(sessions: sessionmaker[Session], count: int) -> list[OutboxMessage]:
    with sessions.begin() as session:
        rows = [outbox.stage(session, "q", "some_actor", {"n": n}) for n in range(count)]
    return rows


def unsent(sessions: sessionmaker[Session]) -> int:
    with sessions() as session:
        return len(
            session.scalars(select(OutboxMessage.id).where(OutboxMessage.sent_at.is_(None))).all()
        )


class Down:
    """Sessions on a store that is down."""

    def begin(self) -> None:
        raise ConnectionError("store down")


@pytest.fixture
def sessions(engine) -> sessionmaker[Session]:
    return make_sessions(engine)


@pytest.fixture
def broker() -> StubBroker:
    broker = StubBroker()
    broker.declare_queue("q")
    return broker


def test_sent_rows_are_marked_by_the_background_thread(sessions, broker) -> None:
    marks = SentMarks(sessions, every_s=0.01)
    rows = staged(sessions, 3)

    outbox.send_leaving_marks(sessions, broker, rows, marks.add)

    assert broker.queues["q"].qsize() == 3
    eventually(lambda: unsent(sessions), lambda n: n == 0)
    marks.close()


def test_a_failed_mark_stays_pending_and_lands_later(sessions, broker) -> None:
    marks = SentMarks(sessions, every_s=3600)
    rows = staged(sessions, 2)
    outbox.send_leaving_marks(sessions, broker, rows, marks.add)

    marks.sessions = Down()  # type: ignore[assignment]
    with pytest.raises(ConnectionError):
        marks.flush()
    marks.sessions = sessions

    assert marks.flush() == 2
    assert unsent(sessions) == 0
    marks.close()


def test_close_marks_what_is_pending(sessions, broker) -> None:
    marks = SentMarks(sessions, every_s=3600)
    outbox.send_leaving_marks(sessions, broker, staged(sessions, 2), marks.add)

    marks.close()

    assert unsent(sessions) == 0


def test_rows_whose_marks_never_landed_are_sent_again_by_the_relay(sessions, broker) -> None:
    marks = SentMarks(sessions, every_s=3600)  # the process "dies" before its marks land
    outbox.send_leaving_marks(sessions, broker, staged(sessions, 2), marks.add)

    assert outbox.relay_pending(sessions, broker, grace_s=0) == 2
    assert unsent(sessions) == 0


def test_a_failed_send_is_recorded_at_once_and_left_for_the_relay(sessions, broker) -> None:
    marks = SentMarks(sessions, every_s=3600)
    rows = staged(sessions, 2)
    broker.queues.clear()  # the stub refuses a message for an undeclared queue

    outbox.send_leaving_marks(sessions, broker, rows, marks.add)

    with sessions() as session:
        first = session.get_one(OutboxMessage, rows[0].id)
    assert (first.sent_at, first.send_attempts) == (None, 1)
    assert first.last_error is not None
    assert marks.flush() == 0
    broker.declare_queue("q")
    assert outbox.relay_pending(sessions, broker, grace_s=0) == 2


def test_a_failed_send_with_the_store_down_too_raises_nothing(sessions, broker) -> None:
    rows = staged(sessions, 1)
    broker.queues.clear()

    outbox.send_leaving_marks(Down(), broker, rows, SentMarks(sessions).add)  # type: ignore[arg-type]

    assert unsent(sessions) == 1
