"""Fixtures: real stores (SQLite and PostgreSQL), real Redis, the simulator, a worker."""

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dramatiq
import httpx
import pytest
import redis
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import Engine, text
from xdist.scheduler import LoadScopeScheduling

from infra.brokers import make_broker
from infra.db import make_engine, make_sessions, migrate
from producers import Producer
from producers.api import create_app
from schema.routes import Route, Routes
from schema.settings import Settings
from schema.tables import Base
from simulator import SimServer
from store.tenants import NewTenant, create_tenant
from tests.services import postgres_server, redis_server, scratch_database
from tests.waiting import eventually
from workers.actors import declare_actors
from workers.runtime import Runtime, build_runtime

SIM_KEY = "sk-genq-test"


# Tests that start processes of their own (workers, the API, a browser, PostgreSQL) run one
# at a time, on one xdist worker, so two of them never compete for the machine's cores.
PROCESS_TESTS = (
    "tests/system/",
    "tests/console/",
    "tests/genq/test_embedded.py",
    "tests/genq/test_procfile.py",
    "tests/genq/test_deploy.py",
    "tests/infra/test_redis_wakeups.py",
    "tests/workers/test_limits.py",
)


class ProcessTestsTogether(LoadScopeScheduling):
    """xdist scheduling that sends every process test to one worker and spreads the rest
    one by one (xdist's own ``loadgroup`` reads markers through a node id pytest 9 no
    longer lets it rename)."""

    def _split_scope(self, nodeid: str) -> str:
        return "processes" if nodeid.startswith(PROCESS_TESTS) else nodeid


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> ProcessTestsTogether:
    return ProcessTestsTogether(config, log)


# The Standard Webhooks schedule compressed from days to about three seconds.
WEBHOOK_TEST_SCHEDULE_S = [0, 0.2, 0.4, 0.6, 0.8, 1.0]


@pytest.fixture(scope="session")
def tmp_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("genq")


@pytest.fixture(scope="session")
def pg_url(tmp_root: Path) -> Iterator[str]:
    with postgres_server(tmp_root / "pg") as admin_url, scratch_database(admin_url) as url:
        migrate(make_engine(url))
        yield url


@pytest.fixture(scope="session")
def sqlite_url(tmp_root: Path) -> str:
    url = f"sqlite:///{tmp_root / 'genq.db'}"
    migrate(make_engine(url))
    return url


@pytest.fixture(scope="session")
def pg_store(pg_url: str) -> Iterator[Engine]:
    engine = make_engine(pg_url)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def sqlite_store(sqlite_url: str) -> Iterator[Engine]:
    engine = make_engine(sqlite_url)
    yield engine
    engine.dispose()


@pytest.fixture(params=["postgresql", "sqlite"])
def engine(request: pytest.FixtureRequest) -> Engine:
    """A migrated, emptied store; tests using it run on PostgreSQL and on SQLite."""
    store = "pg_store" if request.param == "postgresql" else "sqlite_store"
    engine: Engine = request.getfixturevalue(store)
    _empty(engine)
    return engine


@pytest.fixture
def pg_engine(pg_store: Engine) -> Engine:
    """A migrated, emptied PostgreSQL store, for tests that need only PostgreSQL."""
    _empty(pg_store)
    return pg_store


def _empty(engine: Engine) -> None:
    with engine.begin() as connection:
        for table in reversed(Base.metadata.sorted_tables):
            connection.execute(text(f"DELETE FROM {table.name}"))


@pytest.fixture(scope="session")
def redis_server_url(tmp_root: Path) -> Iterator[str]:
    with redis_server(tmp_root / "redis") as url:
        yield url


@pytest.fixture
def redis_url(redis_server_url: str) -> str:
    redis.Redis.from_url(redis_server_url).flushdb()
    return redis_server_url


@pytest.fixture(scope="session")
def sim() -> Iterator[SimServer]:
    with SimServer() as server:
        yield server


@pytest.fixture
def sim_calls(sim: SimServer):  # type: ignore[no-untyped-def]
    """Reset the simulator's counters; return a reader of its chat call count."""
    import httpx

    httpx.post(f"{sim.url}/_sim/reset").raise_for_status()
    return lambda: httpx.get(f"{sim.url}/_sim/stats").json()["calls"].get("chat.completions", 0)


def sim_routes(sim_url: str) -> Routes:
    """Every protocol, served by the simulator, with real-looking prices."""
    common = {"api_key_env": "GENQ_TEST_SIM_KEY", "timeout_s": 10, "max_attempts": 3}
    tables = {
        "openai": {
            "protocol": "openai-chat",
            "base_url": f"{sim_url}/v1",
            "models": {
                "gpt-4o-mini": {"input_per_mtok": 0.15, "output_per_mtok": 0.60},
                "gpt-4o": {"input_per_mtok": 2.5, "output_per_mtok": 10.0},
            },
        },
        "anthropic": {
            "protocol": "anthropic-messages",
            "base_url": sim_url,
            "models": {"claude-haiku-4-5": {"input_per_mtok": 1.0, "output_per_mtok": 5.0}},
        },
        "openai-images": {
            "protocol": "openai-images",
            "base_url": f"{sim_url}/v1",
            "models": {"gpt-image-1": {"per_image": 0.042}, "dall-e-3": {"per_image": 0.04}},
        },
        "replicate": {
            "protocol": "replicate-predictions",
            "base_url": f"{sim_url}/v1",
            "models": {
                "black-forest-labs/flux-schnell": {"per_image": 0.003, "expected_duration_s": 1}
            },
        },
        "openai-video": {
            "protocol": "openai-videos",
            "base_url": f"{sim_url}/v1",
            "models": {"sora-2": {"per_video_second": 0.1, "expected_duration_s": 1}},
        },
        "veo": {
            "protocol": "google-veo",
            "base_url": f"{sim_url}/v1",
            "models": {"veo-3.0-generate-001": {"per_video_second": 0.4, "expected_duration_s": 1}},
        },
        "fal": {
            "protocol": "fal-queue",
            "base_url": f"{sim_url}/fal",
            "models": {"fal-ai/veo3/fast": {"per_request": 3.2, "expected_duration_s": 1}},
        },
    }
    return Routes({name: Route(name=name, **common, **t) for name, t in tables.items()})


@pytest.fixture
def routes(sim: SimServer, monkeypatch: pytest.MonkeyPatch) -> Routes:
    monkeypatch.setenv("GENQ_TEST_SIM_KEY", SIM_KEY)
    return sim_routes(sim.url)


@pytest.fixture
def settings(tmp_path: Path, engine: Engine, redis_url: str) -> Settings:
    return Settings(
        var_dir=tmp_path / "var",
        database_url=SecretStr(engine.url.render_as_string(hide_password=False)),
        redis_url=SecretStr(redis_url),
        broker="redis",
        relay_grace_s=0,
        webhook_allow_networks=["127.0.0.0/8", "::1/128"],
        webhook_retry_schedule_s=WEBHOOK_TEST_SCHEDULE_S,
        # Calls on the worker's threads, so a test that runs a job by hand finds it ended;
        # tests/workers/test_call_loop.py and the process tests run them on the loop.
        worker_in_flight=0,
        _env_file=None,
    )


@pytest.fixture
def producer(settings: Settings, engine: Engine, routes: Routes) -> Iterator[Producer]:
    producer = Producer(settings, engine=engine, routes=routes)
    yield producer
    producer.sent_marks.close()  # no mark may land in the next test's rows
    producer.broker.close()


@pytest.fixture
def client(producer: Producer) -> Iterator[TestClient]:
    with TestClient(create_app(producer), raise_server_exceptions=False) as client:
        yield client


def new_tenant(engine: Engine, name: str) -> NewTenant:
    with make_sessions(engine).begin() as session:
        return create_tenant(session, name)


@pytest.fixture
def tenant(engine: Engine) -> NewTenant:
    return new_tenant(engine, "acme")


@pytest.fixture
def auth(tenant: NewTenant) -> dict[str, str]:
    return {"Authorization": f"Bearer {tenant.api_key}"}


@pytest.fixture
def runtime(settings: Settings, engine: Engine, routes: Routes) -> Iterator[Runtime]:
    broker = make_broker(settings, consumer=True)
    runtime = build_runtime(settings, broker, engine=engine, routes=routes)
    declare_actors(runtime)
    runtime.start()
    yield runtime
    runtime.close()
    broker.close()


@pytest.fixture
def worker(runtime: Runtime) -> Iterator[dramatiq.Worker]:
    worker = dramatiq.Worker(runtime.broker, worker_timeout=50, worker_threads=4)
    worker.start()
    yield worker
    worker.stop()


class SimControl:
    """Change the shared simulator for one test: faults and config, restored afterwards."""

    def __init__(self, sim: SimServer) -> None:
        self.http = httpx.Client(base_url=sim.url)
        self.saved = self.http.get("/_sim/config").json()
        self.http.post("/_sim/reset").raise_for_status()

    def faults(self, *rules: dict) -> None:  # type: ignore[type-arg]
        self.http.post("/_sim/faults", json=list(rules)).raise_for_status()

    def config(self, **changes: object) -> None:
        self.http.post("/_sim/config", json=changes).raise_for_status()

    def calls(self, endpoint: str) -> int:
        return int(self.http.get("/_sim/stats").json()["calls"].get(endpoint, 0))

    def restore(self) -> None:
        self.http.delete("/_sim/faults")
        self.http.post("/_sim/config", json=self.saved)
        self.http.post("/_sim/reset")
        self.http.close()


@pytest.fixture
def sim_control(sim: SimServer) -> Iterator[SimControl]:
    control = SimControl(sim)
    yield control
    control.restore()


@pytest.fixture
def cli_env(engine: Engine, redis_url: str, tmp_path, monkeypatch: pytest.MonkeyPatch) -> Engine:
    """The command line on the test's store and Redis, with room for wide tables."""
    monkeypatch.setenv("GENQ_DATABASE_URL", engine.url.render_as_string(hide_password=False))
    monkeypatch.setenv("GENQ_REDIS_URL", redis_url)
    monkeypatch.setenv("GENQ_VAR_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("COLUMNS", "250")
    return engine


class Hooks:
    """The simulator's sample receiver, one uniquely named hook per use."""

    def __init__(self, sim: SimServer) -> None:
        self.sim = sim
        self.http = httpx.Client(base_url=sim.url)

    def new(self, secrets: list[str] | None = None, **behaviour: Any) -> str:
        name = uuid.uuid4().hex[:12]
        self.configure(name, secrets or [], **behaviour)
        return name

    def configure(self, name: str, secrets: list[str], **behaviour: Any) -> None:
        self.http.put(
            f"/_sim/hooks/{name}", json={"secrets": secrets, **behaviour}
        ).raise_for_status()

    def url(self, name: str) -> str:
        return f"{self.sim.url}/hooks/{name}"

    def state(self, name: str) -> dict[str, Any]:
        return self.http.get(f"/_sim/hooks/{name}").json()

    def wait(self, name: str, counter: str, at_least: int) -> dict[str, Any]:
        return eventually(lambda: self.state(name), lambda state: state[counter] >= at_least)

    def release(self, name: str) -> None:
        self.http.post(f"/_sim/hooks/{name}/release").raise_for_status()


@pytest.fixture
def hooks(sim: SimServer) -> Iterator[Hooks]:
    hooks = Hooks(sim)
    yield hooks
    hooks.http.close()
