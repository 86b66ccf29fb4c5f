"""Dramatiq on RabbitMQ (``GENQ_BROKER=rabbitmq``): jobs, delayed messages, the outbox
relay and webhooks go through RabbitMQ, while limits, circuits and the cache stay in Redis.

The RabbitMQ is ``GENQ_TEST_RABBITMQ_URL`` (it must answer), else guest on 127.0.0.1:5672
(skipped when it does not). genq's queues are purged before and after each test.
"""

import os
from collections.abc import Iterator
from contextlib import contextmanager

import dramatiq
import pika
import pika.exceptions
import pytest
from dramatiq import Message
from dramatiq.brokers.rabbitmq import RabbitmqBroker
from fastapi.testclient import TestClient
from pydantic import SecretStr, ValidationError
from sqlalchemy import Engine, select
from typer.testing import CliRunner

from genq.cli import app
from infra.broker_upkeep import EPOCH_QUEUE, epoch_missing, mark_epoch
from infra.brokers import make_broker
from infra.db import make_sessions
from producers import Producer
from producers.api import create_app
from schema.jobs import JobCreate
from schema.names import DELIVER_WEBHOOKS, JOBS_QUEUE, RUN_JOB, WEBHOOKS_QUEUE
from schema.routes import Routes
from schema.settings import Settings
from schema.tables import Job, OutboxMessage
from store import outbox
from store.outbox import relay_pending
from store.tenants import NewTenant
from tests.producers.test_api import CHAT
from tests.waiting import eventually
from tests.workers.test_webhooks import add_endpoint
from workers.actors import declare_actors
from workers.runtime import Runtime, build_runtime

LOCAL_RABBITMQ = "amqp://guest:guest@127.0.0.1:5672/%2F"
DEAD_RABBITMQ = "amqp://guest:guest@127.0.0.1:9/%2F"
QUEUES = (JOBS_QUEUE, WEBHOOKS_QUEUE)


@pytest.fixture(scope="session")
def rabbitmq_url() -> str:
    configured = os.environ.get("GENQ_TEST_RABBITMQ_URL")
    try:
        pika.BlockingConnection(pika.URLParameters(configured or LOCAL_RABBITMQ)).close()
    except pika.exceptions.AMQPError as exc:
        if configured:
            raise
        pytest.skip(
            f"no RabbitMQ at 127.0.0.1:5672 ({type(exc).__name__}); "
            "set GENQ_TEST_RABBITMQ_URL to test the RabbitMQ broker"
        )
    return configured or LOCAL_RABBITMQ


def on_rabbitmq(settings: Settings, url: str) -> Settings:
    return settings.model_copy(update={"broker": "rabbitmq", "rabbitmq_url": SecretStr(url)})


@pytest.fixture
def rabbit_settings(settings: Settings, rabbitmq_url: str) -> Iterator[Settings]:
    """The test's settings on RabbitMQ, with genq's queues empty before and after."""
    rabbit = on_rabbitmq(settings, rabbitmq_url)
    cleaner = make_broker(rabbit, consumer=False)
    purge(cleaner)
    yield rabbit
    purge(cleaner)
    cleaner.close()


def purge(broker: dramatiq.Broker) -> None:
    """Drop every message of genq's queues, their delay and dead-letter queues included."""
    for queue in QUEUES:
        broker.flush(queue)


@pytest.fixture
def sender(rabbit_settings: Settings) -> Iterator[RabbitmqBroker]:
    broker = make_broker(rabbit_settings, consumer=False)
    assert isinstance(broker, RabbitmqBroker)
    yield broker
    broker.close()


@pytest.fixture
def rabbit_producer(
    rabbit_settings: Settings, engine: Engine, routes: Routes
) -> Iterator[Producer]:
    producer = Producer(rabbit_settings, engine=engine, routes=routes)
    yield producer
    close(producer)


def close(producer: Producer) -> None:
    """Close a producer's connections, but not the test's shared engine."""
    producer.sent_marks.close()
    producer.broker.close()
    producer.redis.close()


@pytest.fixture
def rabbit_runtime(rabbit_settings: Settings, engine: Engine, routes: Routes) -> Iterator[Runtime]:
    broker = make_broker(rabbit_settings, consumer=True)
    runtime = build_runtime(rabbit_settings, broker, engine=engine, routes=routes)
    declare_actors(runtime)
    runtime.start()
    yield runtime
    runtime.close()
    broker.close()


@contextmanager
def running_worker(runtime: Runtime) -> Iterator[dramatiq.Worker]:
    worker = dramatiq.Worker(runtime.broker, worker_timeout=50, worker_threads=4)
    worker.start()
    try:
        yield worker
    finally:
        worker.stop()


@pytest.fixture
def rabbit_worker(rabbit_runtime: Runtime) -> Iterator[dramatiq.Worker]:
    with running_worker(rabbit_runtime) as worker:
        yield worker


@pytest.fixture
def stranded_job(
    rabbit_settings: Settings, engine: Engine, routes: Routes, tenant: NewTenant
) -> str:
    """A queued job whose producer could not reach RabbitMQ: its outbox row waits unsent."""
    dead = make_broker(on_rabbitmq(rabbit_settings, DEAD_RABBITMQ), consumer=False)
    producer = Producer(rabbit_settings, engine=engine, routes=routes, broker=dead)
    job, _ = producer.submit(tenant.tenant_id, JobCreate(**CHAT))
    close(producer)
    return job.id


def job_of(engine: Engine, job_id: str) -> Job:
    with make_sessions(engine)() as session:
        job = session.get(Job, job_id)
    assert job is not None
    return job


def finished(engine: Engine, job_id: str) -> Job:
    return eventually(
        lambda: job_of(engine, job_id), lambda job: job.status not in ("queued", "running")
    )


def test_rabbitmq_broker_needs_its_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GENQ_BROKER", "rabbitmq")
    monkeypatch.setenv("GENQ_REDIS_URL", "redis://:hunter2@cache:6379/0")
    monkeypatch.delenv("GENQ_RABBITMQ_URL", raising=False)

    with pytest.raises(ValidationError, match="GENQ_BROKER=rabbitmq needs GENQ_RABBITMQ_URL") as e:
        Settings(_env_file=None)
    assert "hunter2" not in str(e.value)

    monkeypatch.setenv("GENQ_RABBITMQ_URL", "amqp://genq:hunter2@mq:5672/genq")
    settings = Settings(_env_file=None)
    assert settings.broker == "rabbitmq"
    assert "hunter2" not in repr(settings)


def test_worker_help_needs_no_broker(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GENQ_BROKER", "rabbitmq")
    monkeypatch.delenv("GENQ_RABBITMQ_URL", raising=False)

    result = CliRunner().invoke(app, ["worker", "--help"])

    assert result.exit_code == 0, result.output
    assert "Dramatiq worker" in result.output


def test_a_sender_without_actors_publishes_to_both_queues(sender: RabbitmqBroker) -> None:
    for queue, actor, kwargs in (
        (JOBS_QUEUE, RUN_JOB, {"job_id": "job_x"}),
        (WEBHOOKS_QUEUE, DELIVER_WEBHOOKS, {"delivery_ids": ["whd_x"]}),
    ):
        sender.enqueue(
            Message(queue_name=queue, actor_name=actor, args=(), kwargs=kwargs, options={})
        )

    assert [sender.get_queue_message_counts(queue) for queue in QUEUES] == [(1, 0, 0)] * 2


def test_a_job_runs_to_succeeded_through_rabbitmq(
    rabbit_producer: Producer, tenant: NewTenant, engine: Engine, rabbit_worker
) -> None:
    assert isinstance(rabbit_producer.broker, RabbitmqBroker)

    job, _ = rabbit_producer.submit(tenant.tenant_id, JobCreate(**CHAT))

    assert finished(engine, job.id).status == "succeeded"


def test_the_relay_sends_through_rabbitmq_what_the_producer_could_not(
    stranded_job: str, sender: RabbitmqBroker, engine: Engine, rabbit_worker
) -> None:
    sessions = make_sessions(engine)
    with sessions() as session:
        row = session.scalars(select(OutboxMessage)).one()
    assert (row.sent_at, row.send_attempts) == (None, 1)
    assert "ConnectionClosed" in row.last_error

    assert relay_pending(sessions, sender, grace_s=0) == 1

    assert finished(engine, stranded_job).status == "succeeded"


def test_a_delayed_message_waits_in_the_delay_queue_then_runs(
    stranded_job: str, sender: RabbitmqBroker, rabbit_runtime: Runtime, engine: Engine
) -> None:
    sessions = make_sessions(engine)
    with sessions.begin() as session:
        row = outbox.stage(session, JOBS_QUEUE, RUN_JOB, {"job_id": stranded_job}, delay_s=1)

    assert outbox.send(sessions, sender, [row]) == 1
    assert sender.get_queue_message_counts(JOBS_QUEUE) == (0, 1, 0)

    with running_worker(rabbit_runtime):
        job = finished(engine, stranded_job)
    assert job.status == "succeeded"
    assert job.started_at >= row.available_at


def test_a_webhook_is_delivered_through_rabbitmq(
    rabbit_producer: Producer, tenant: NewTenant, hooks, rabbit_worker
) -> None:
    auth = {"Authorization": f"Bearer {tenant.api_key}"}
    name = hooks.new()
    with TestClient(create_app(rabbit_producer)) as client:
        endpoint = add_endpoint(client, auth, hooks.url(name))
        hooks.configure(name, [endpoint["secret"]])
        client.post("/v1/jobs", json=CHAT, headers=auth).raise_for_status()

        state = hooks.wait(name, "verified", 1)

    assert (state["verified"], state["bad_signature"]) == (1, 0)


def test_readyz_pings_rabbitmq(rabbit_producer: Producer, rabbit_settings: Settings) -> None:
    dead = make_broker(on_rabbitmq(rabbit_settings, DEAD_RABBITMQ), consumer=False)
    down = Producer(
        rabbit_settings, engine=rabbit_producer.engine, routes=rabbit_producer.routes, broker=dead
    )
    with TestClient(create_app(rabbit_producer)) as live, TestClient(create_app(down)) as dead:
        up, gone = live.get("/readyz"), dead.get("/readyz")
    close(down)

    assert (up.status_code, up.json()["checks"]["broker"]) == (200, "ok")
    assert gone.status_code == 503
    assert gone.json()["checks"]["broker"].startswith("error")


def test_the_epoch_marker_notices_a_rabbitmq_that_lost_its_queues(
    rabbit_settings: Settings, rabbitmq_url: str
) -> None:
    broker = make_broker(rabbit_settings, consumer=False)
    try:
        mark_epoch(broker)
        assert not epoch_missing(broker)
        connection = pika.BlockingConnection(pika.URLParameters(rabbitmq_url))
        connection.channel().queue_delete(EPOCH_QUEUE)  # as a node restarted empty would be
        connection.close()

        assert epoch_missing(broker)
        mark_epoch(broker)
        assert not epoch_missing(broker)
    finally:
        broker.close()
