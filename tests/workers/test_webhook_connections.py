"""Kept-alive webhook connections on real sockets: reused for the same host on the same
checked address, never for another host name or a new address, and still cut at the
whole-exchange deadline when reused."""

import socket
import threading
from collections.abc import Iterator
from contextlib import closing
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from infra.destinations import Destination
from tests.workers.test_webhook_sender import trickle
from workers.webhooks import sender
from workers.webhooks.connections import Connections


class CountingServer(ThreadingHTTPServer):
    """An HTTP/1.1 receiver that counts the connections it accepts and answers 200."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int]) -> None:
        super().__init__(address, Handler)
        self.accepted = 0

    def get_request(self) -> tuple[socket.socket, object]:
        accepted = super().get_request()
        self.accepted += 1
        return accepted


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["content-length"]))
        reply = self.headers["host"].encode()
        self.send_response(200)
        self.send_header("content-length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, *args: object) -> None:
        pass


def serving(address: tuple[str, int]) -> Iterator[CountingServer]:
    server = CountingServer(address)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture
def receiver() -> Iterator[CountingServer]:
    yield from serving(("127.0.0.1", 0))


@pytest.fixture
def twin(receiver: CountingServer) -> Iterator[CountingServer]:
    """A second receiver on the same port at another loopback address."""
    yield from serving(("127.0.0.2", receiver.server_address[1]))


def to(server: CountingServer, host: str) -> Destination:
    address, port = server.server_address[:2]
    url = f"http://{host}:{port}/hook"
    return Destination(url, "http", host, port, (str(address),))


def post(connections: Connections, destination: Destination) -> sender.Reply:
    return sender.post(connections, destination, {}, b"{}", timeout_s=5)


def test_deliveries_to_one_receiver_share_a_connection(receiver: CountingServer) -> None:
    with closing(Connections(4, 4)) as connections:
        replies = [post(connections, to(receiver, "hooks.invalid")) for _ in range(3)]

    assert [reply.status_code for reply in replies] == [200, 200, 200]
    assert receiver.accepted == 1


def test_another_host_on_the_same_address_gets_its_own_connection(
    receiver: CountingServer,
) -> None:
    with closing(Connections(4, 4)) as connections:
        first = post(connections, to(receiver, "a.invalid"))
        second = post(connections, to(receiver, "b.invalid"))
        again = post(connections, to(receiver, "a.invalid"))

    port = receiver.server_address[1]
    assert [first.excerpt, second.excerpt, again.excerpt] == [
        f"a.invalid:{port}",
        f"b.invalid:{port}",
        f"a.invalid:{port}",
    ]
    assert receiver.accepted == 2


def test_a_name_that_resolves_elsewhere_does_not_reuse_the_old_connection(
    receiver: CountingServer, twin: CountingServer
) -> None:
    with closing(Connections(4, 4)) as connections:
        before = post(connections, to(receiver, "hooks.invalid"))
        after = post(connections, to(twin, "hooks.invalid"))

    assert (before.status_code, after.status_code) == (200, 200)
    assert (receiver.accepted, twin.accepted) == (1, 1)


def test_an_evicted_pool_is_closed_and_its_receiver_connected_anew(
    receiver: CountingServer,
) -> None:
    with closing(Connections(4, 4, max_pools=1)) as connections:
        post(connections, to(receiver, "a.invalid"))
        post(connections, to(receiver, "b.invalid"))
        post(connections, to(receiver, "a.invalid"))

    assert receiver.accepted == 3


def test_a_pool_evicted_while_in_use_closes_when_its_request_is_done(
    receiver: CountingServer,
) -> None:
    with closing(Connections(4, 4, max_pools=1)) as connections:
        with connections.pool(to(receiver, "a.invalid")) as in_use:
            post(connections, to(receiver, "b.invalid"))
            answer = in_use.request("POST", to(receiver, "a.invalid").url, content=b"{}")
            assert (answer.status, len(in_use.connections)) == (200, 1)

        assert in_use.connections == []


def read_request(connection: socket.socket, received: bytes) -> bytes:
    """Read one request with a Content-Length body; return what came after it."""
    while b"\r\n\r\n" not in received:
        received += connection.recv(65536)
    head, _, rest = received.partition(b"\r\n\r\n")
    length = int(
        httpx.Headers([line.split(b":", 1) for line in head.split(b"\r\n")[1:]])["content-length"]
    )
    while len(rest) < length:
        rest += connection.recv(65536)
    return rest[length:]


@pytest.fixture
def answers_then_trickles() -> Iterator[tuple[int, threading.Event]]:
    """One connection: a whole answer to the first request, then one header byte every
    0.2 s, forever, to the second; the event says the second came on that connection."""
    listener = socket.create_server(("127.0.0.1", 0))
    second = threading.Event()
    stop = threading.Event()

    def serve() -> None:
        connection, _ = listener.accept()
        with connection:
            rest = read_request(connection, b"")
            connection.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
            read_request(connection, rest)
            second.set()
            trickle(connection, stop)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield listener.getsockname()[1], second
    stop.set()
    listener.close()
    thread.join(5)


@pytest.mark.timeout(30)
def test_the_deadline_cuts_a_reused_connection_too(
    answers_then_trickles: tuple[int, threading.Event],
) -> None:
    port, second = answers_then_trickles
    destination = Destination(
        f"http://127.0.0.1:{port}/", "http", "127.0.0.1", port, ("127.0.0.1",)
    )
    with closing(Connections(4, 4)) as connections:
        first = sender.post(connections, destination, {}, b"{}", timeout_s=5)
        cut = sender.post(connections, destination, {}, b"{}", timeout_s=1)

    assert first.status_code == 200
    assert second.is_set()
    assert (cut.status_code, cut.error) == (None, "no answer within 1 s")
