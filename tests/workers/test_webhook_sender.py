"""The webhook sender on real sockets: it connects to the vetted address while keeping the
URL's host, reads only an excerpt, and bounds the whole exchange, not each read."""

import json
import socket
import threading
from collections.abc import Iterator
from contextlib import closing

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from infra.destinations import Destination
from simulator.server import ThreadedServer
from workers.webhooks import sender
from workers.webhooks.connections import Connections


async def echo(request: Request) -> Response:
    return JSONResponse({"host": request.headers["host"], "body": (await request.body()).decode()})


async def broken_gzip(request: Request) -> Response:
    return Response(b"this is not gzip", headers={"content-encoding": "gzip"})


@pytest.fixture(scope="module")
def server() -> Iterator[ThreadedServer]:
    routes = [Route("/echo", echo, methods=["POST"]), Route("/gz", broken_gzip, methods=["POST"])]
    app = Starlette(routes=routes)
    with ThreadedServer(app) as running:
        yield running


def destination(url: str, address: str = "127.0.0.1") -> Destination:
    parsed = httpx.URL(url)
    return Destination(url, parsed.scheme, parsed.host, parsed.port or 80, (address,))


def test_it_connects_to_the_vetted_address_under_the_urls_own_host(server) -> None:
    port = httpx.URL(server.url).port
    with closing(Connections(4, 4)) as connections:
        reply = sender.post(
            connections, destination(f"http://hooks.invalid:{port}/echo"), {}, b"{}", timeout_s=5
        )

    assert reply.ok
    assert json.loads(reply.excerpt or "") == {"host": f"hooks.invalid:{port}", "body": "{}"}


def test_a_body_that_fails_to_decode_is_an_answer_not_a_crash(server) -> None:
    with closing(Connections(4, 4)) as connections:
        reply = sender.post(connections, destination(f"{server.url}/gz"), {}, b"{}", timeout_s=5)

    assert (reply.status_code, reply.ok) == (200, True)
    assert reply.excerpt == "this is not gzip"


def trickle(connection: socket.socket, stop: threading.Event) -> None:
    """Answer with a status line, then one header byte every 0.2 s until ``stop``."""
    connection.sendall(b"HTTP/1.1 200 OK\r\n")
    while not stop.wait(0.2):
        try:
            connection.sendall(b"X")
        except OSError:
            return


@pytest.fixture
def trickler() -> Iterator[int]:
    """A receiver that answers one header byte every 0.2 s, forever: each read is quick,
    the whole answer never comes."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        connection, _ = listener.accept()
        with connection:
            connection.recv(65536)
            trickle(connection, stop)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    listener.close()
    thread.join(5)


@pytest.mark.timeout(30)
def test_the_timeout_bounds_the_whole_answer_not_each_read(trickler: int) -> None:
    with closing(Connections(4, 4)) as connections:
        reply = sender.post(
            connections, destination(f"http://127.0.0.1:{trickler}/"), {}, b"{}", timeout_s=1
        )

    assert reply.status_code is None
    assert reply.error == "no answer within 1 s"
