"""Running the simulator: in a background thread for tests, or in the foreground."""

import socket
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Self

import uvicorn
from starlette.types import ASGIApp

from simulator.app import create_app
from simulator.config import SimConfig

STARTUP_TIMEOUT = 10.0
SHUTDOWN_TIMEOUT = 10.0
POLL_INTERVAL = 0.005


class ThreadedServer:
    """An ASGI app served by uvicorn on a background thread.

    Use it as a context manager, or call start() and stop(). Port 0 picks a
    free port; `port` and `url` tell which one once started.
    """

    def __init__(self, app: ASGIApp, host: str = "127.0.0.1", port: int = 0) -> None:
        self.app = app
        self.host = host
        self.port = port
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The server's root, like "http://127.0.0.1:PORT"."""
        return f"http://{self.host}:{self.port}"

    def start(self) -> Self:
        """Serve on a background thread; return once connections are accepted."""
        if self._thread is not None:
            raise RuntimeError("server is already running")
        sock = socket.create_server((self.host, self.port))
        # Accepted connections inherit this; without it, a response written as
        # headers then body waits on the client's delayed ACK, 40 ms a request.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(self.app, log_level="warning", access_log=False)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run,
            kwargs={"sockets": [sock]},
            name=f"uvicorn-{self.port}",
            daemon=True,
        )
        self._thread.start()
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                sock.close()
                raise RuntimeError(f"server failed to start on {self.url}")
            time.sleep(POLL_INTERVAL)
        return self

    def stop(self) -> None:
        """Shut the server down and wait for its thread to finish."""
        if self._server is None or self._thread is None:
            return
        self._server.should_exit = True
        self._thread.join(SHUTDOWN_TIMEOUT)
        self._server = self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


class SimServer(ThreadedServer):
    """A simulator on a background thread, for tests and benches."""

    def __init__(
        self,
        config: SimConfig | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config or SimConfig()
        super().__init__(create_app(self.config, clock), host, port)

    @property
    def base_url(self) -> str:
        """The root of the OpenAI API, what an OpenAI client's base_url should be."""
        return f"{self.url}/v1"


def serve(config: SimConfig | None = None, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Serve a simulator in the foreground until interrupted, as `genq sim` does."""
    uvicorn.run(create_app(config), host=host, port=port)
