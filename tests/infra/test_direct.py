"""``Direct``: a Core statement run straight on psycopg gives the rows SQLAlchemy's own
execution gives, commits alone, leaves its pooled connection as it found it, and fails
the way SQLAlchemy's execution fails."""

import logging
from datetime import UTC, datetime

import pytest
from sqlalchemy import (
    Dialect,
    Engine,
    String,
    TypeDecorator,
    bindparam,
    create_engine,
    func,
    insert,
    literal,
    select,
    text,
)
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError

from infra.direct import Direct, UnsupportedStatementError
from schema.tables import JSONDoc, Tenant, UTCDateTime
from tests.infra.conftest import drop_connections

TYPED = select(
    bindparam("at", type_=UTCDateTime).label("at"),
    bindparam("doc", type_=JSONDoc).label("doc"),
    literal("fixed").label("fixed"),
    (bindparam("n", type_=Tenant.rate_per_minute.type) + 1).label("next"),
)
AT = datetime(2026, 12, 3, 18, 0, tzinfo=UTC)
NEW_TENANT = insert(Tenant).values(
    id=bindparam("id"), name=bindparam("name"), budget_period="month", created_at=AT
)


def test_a_statement_gives_the_rows_sqlalchemys_execution_gives(own_engine: Engine) -> None:
    parameters = {"at": AT, "doc": {"a": [1, "b"]}, "n": 41}
    with own_engine.connect() as connection:
        expected = tuple(connection.execute(TYPED, parameters).one())

    row = Direct(own_engine).execute(TYPED, parameters).one_or_none()

    assert row == expected == (AT, {"a": [1, "b"]}, "fixed", 42)
    assert row[0].tzinfo is not None


def test_a_statement_is_committed_alone_and_its_connection_goes_back_as_it_came(
    own_engine: Engine, pg_engine: Engine
) -> None:
    direct = Direct(own_engine)

    added = direct.execute(NEW_TENANT.returning(Tenant.id), {"id": "ten_1", "name": "one"})

    assert added.one_or_none() == ("ten_1",)
    with own_engine.connect() as connection:
        assert connection.scalar(select(Tenant.name).where(Tenant.id == "ten_1")) == "one"
        assert connection.connection.driver_connection.autocommit is False  # type: ignore[union-attr]
    assert direct.execute(NEW_TENANT, {"id": "ten_2", "name": "two"}).one_or_none() is None


def test_a_failed_statement_raises_sqlalchemys_error_and_leaves_the_pool_usable(
    own_engine: Engine, pg_engine: Engine
) -> None:
    direct = Direct(own_engine)
    direct.execute(NEW_TENANT, {"id": "ten_1", "name": "one"})

    with pytest.raises(IntegrityError) as raised:
        direct.execute(NEW_TENANT, {"id": "ten_1", "name": "again"})
    with pytest.raises(DataError):
        direct.execute(select(literal(1) / bindparam("zero")), {"zero": 0})

    assert getattr(raised.value.orig, "sqlstate", None) == "23505"
    assert not raised.value.connection_invalidated
    assert own_engine.pool.checkedout() == 0
    with own_engine.connect() as connection:
        assert connection.connection.driver_connection.autocommit is False  # type: ignore[union-attr]
        assert connection.execute(text("SELECT 1")).scalar() == 1


class Refused(TypeDecorator[str]):
    """A type whose every value read back is refused."""

    impl = String
    cache_ok = True

    def process_result_value(self, value: str | None, dialect: Dialect) -> str:
        raise ValueError(f"refused {value}")


def test_a_statement_whose_rows_cannot_be_read_leaves_its_connection_as_it_came(
    own_engine: Engine,
) -> None:
    with pytest.raises(ValueError, match="refused x"):
        Direct(own_engine).execute(select(literal("x", Refused)), {})

    assert own_engine.pool.checkedout() == 0
    with own_engine.connect() as connection:
        assert connection.connection.driver_connection.autocommit is False  # type: ignore[union-attr]


def test_a_statement_on_a_dropped_pooled_connection_runs_again(
    own_engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    direct = Direct(own_engine)
    heard: list[str] = []
    direct.listeners.append(heard.append)
    direct.execute(TYPED, {"at": AT, "doc": {}, "n": 1})
    drop_connections(own_engine)

    with caplog.at_level(logging.INFO, logger="infra.direct"):
        row = direct.execute(TYPED, {"at": AT, "doc": {}, "n": 2}).one_or_none()

    assert row is not None and row[3] == 3
    assert len(heard) == 3
    assert "running the statement again" in caplog.text


def test_a_statement_whose_connections_keep_dropping_fails_invalidated(
    own_engine: Engine,
) -> None:
    direct = Direct(own_engine)
    end_own = select(func.pg_terminate_backend(func.pg_backend_pid()))

    with pytest.raises(DBAPIError) as raised:
        direct.execute(end_own, {})

    assert raised.value.connection_invalidated
    assert own_engine.pool.checkedout() == 0


def test_what_cannot_run_straight_on_the_driver_is_refused_before_it_is_sent(
    own_engine: Engine,
) -> None:
    direct = Direct(own_engine)
    heard: list[str] = []
    direct.listeners.append(heard.append)

    with pytest.raises(ValueError, match="no value for the statement's parameters n"):
        direct.execute(TYPED, {"at": AT, "doc": {}})
    with pytest.raises(UnsupportedStatementError):
        direct.execute(select(Tenant.id).where(Tenant.id.in_(bindparam("ids", expanding=True))), {})
    with pytest.raises(ValueError, match="at most one row"):
        direct.execute(select(literal(1)).union_all(select(literal(2))), {}).one_or_none()
    with pytest.raises(ValueError, match="only on PostgreSQL"):
        Direct(create_engine("sqlite://"))

    assert len(heard) == 1
