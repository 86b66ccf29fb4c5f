"""Broker upkeep on a real Redis: a dead worker's fetched messages go back on the queue,
and a flushed broker is noticed by its missing epoch marker; every open job is re-sent."""

from dramatiq import Message

from infra.broker_upkeep import epoch_missing, maintainer, mark_epoch, requeue_orphans
from infra.brokers import make_broker
from schema.names import JOBS_QUEUE
from tests.waiting import eventually
from workers.sweeps import resend_open


def test_a_dead_workers_fetched_message_is_requeued(settings) -> None:
    quick = settings.model_copy(update={"broker_heartbeat_timeout_s": 0.2})
    sender, dead = make_broker(quick, consumer=False), make_broker(quick, consumer=False)
    sender.declare_queue(JOBS_QUEUE)
    sender.enqueue(Message(JOBS_QUEUE, "run_job", (), {"job_id": "job_x"}, {}))
    assert len(dead.do_fetch(JOBS_QUEUE, 10)) == 1  # held in the dead worker's ack set
    twin = maintainer(sender)
    assert twin is not None
    queued = f"{sender.namespace}:{JOBS_QUEUE}"

    def requeued() -> int:
        requeue_orphans(twin, [JOBS_QUEUE])
        return int(sender.client.llen(queued))

    # Back once the dead worker's heartbeat is older than the timeout, not before.
    assert requeued() == 0
    eventually(requeued, lambda n: n == 1, timeout_s=5)


def test_a_flushed_broker_is_noticed_and_every_open_job_is_resent(
    settings, runtime, client, auth
) -> None:
    body = {
        "model": "openai/gpt-4o-mini",
        "input": {"messages": [{"role": "user", "content": "x"}]},
    }
    ids = [client.post("/v1/jobs", json=body, headers=auth).json()["id"] for _ in range(3)]
    mark_epoch(runtime.broker)
    assert not epoch_missing(runtime.broker)

    runtime.broker.client.flushdb()

    assert epoch_missing(runtime.broker)
    assert resend_open(runtime.sessions, runtime.broker, spread_s=0, batch_size=2) == 3
    assert runtime.broker.client.llen(f"{runtime.broker.namespace}:{JOBS_QUEUE}") == len(ids)
