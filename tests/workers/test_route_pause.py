"""An operator's pause holds a route's jobs, queued and with no attempt used; resuming lets
them go. Closing a circuit by hand lets calls through at once."""

import pytest

from infra import route_control
from infra.circuits import circuit_states, state_key
from schema.tables import utcnow
from tests.workers.test_limits import delayed_messages, status, submit
from workers import execution

pytestmark = pytest.mark.parametrize("engine", ["postgresql"], indirect=True)


def test_a_paused_route_holds_its_jobs_until_resumed(client, auth, runtime, sim_control) -> None:
    route_control.pause(runtime.broker.client, "openai", "admin:alice", utcnow())
    (job_id,) = submit(client, auth, 1)

    execution.run_job(runtime, job_id)

    assert status(runtime, job_id) == ("queued", 0)
    assert sim_control.calls("chat.completions") == 0
    assert delayed_messages(runtime) == 1

    assert route_control.resume(runtime.broker.client, "openai")
    execution.run_job(runtime, job_id)
    assert status(runtime, job_id) == ("succeeded", 1)


def test_closing_a_circuit_by_hand_lets_calls_through(client, auth, runtime) -> None:
    redis_client = runtime.broker.client
    redis_client.hset(state_key("openai"), mapping={"state": "open", "open_until": 2**50})
    (job_id,) = submit(client, auth, 1)

    route_control.close_circuit(redis_client, "openai")
    execution.run_job(runtime, job_id)

    assert circuit_states(redis_client, ["openai"]) == {"openai": "closed"}
    assert status(runtime, job_id) == ("succeeded", 1)
