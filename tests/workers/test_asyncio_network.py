"""The provider clients' network layer on asyncio: calls go out and come back whole (TLS,
large bodies both ways), connections are kept and a closed one is not used again, and
every failure is the httpx error an adapter already handles."""

import asyncio
import socket
import ssl
import struct
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpcore
import httpx
import pytest
import trustme

from infra import tls
from schema.routes import Routes
from workers.providers import asyncio_network, make_async_client
from workers.providers.asyncio_network import AsyncioBackend, AsyncioTransport

LIMITS = httpx.Limits(max_connections=4, max_keepalive_connections=4, keepalive_expiry=60)
DEADLINE_S = 10.0

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class Receiver:
    """An HTTP/1.1 server on a free port of this loop that answers each request with its
    body's length, keeping the connection unless told to close it after one answer."""

    def __init__(self, close_after_answer: bool = False) -> None:
        self.close_after_answer = close_after_answer
        self.connections = 0
        self.reply = b""

    async def __call__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while head := await reader.readuntil(b"\r\n\r\n"):
                length = next(
                    int(line.split(b":", 1)[1])
                    for line in head.lower().split(b"\r\n")
                    if line.startswith(b"content-length:")
                )
                body = await reader.readexactly(length)
                answer = self.reply or str(len(body)).encode()
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(answer))
                writer.write(answer)
                await writer.drain()
                if self.close_after_answer:
                    break
        except asyncio.IncompleteReadError:
            pass
        writer.close()


@asynccontextmanager
async def serving(handler: Handler, context: ssl.SSLContext | None = None) -> AsyncIterator[str]:
    """``handler`` on a free port; on the way out, its connections are waited for (the
    client closed them first), so none is cut off with the loop."""
    handling: set[asyncio.Task[Any]] = set()

    async def tracked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        handling.add(asyncio.current_task())  # type: ignore[arg-type]
        await handler(reader, writer)

    server = await asyncio.start_server(tracked, "127.0.0.1", 0, ssl=context)
    port = server.sockets[0].getsockname()[1]
    async with server:
        yield f"{'https' if context else 'http'}://127.0.0.1:{port}"
        if handling:
            await asyncio.wait(handling, timeout=DEADLINE_S)


async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Reads until the client hangs up; answers nothing, not even a TLS handshake."""
    await reader.read()


def client(verify: ssl.SSLContext | None = None, timeout_s: float = 5.0) -> httpx.AsyncClient:
    transport = AsyncioTransport(verify or tls.client_context(), LIMITS)
    return httpx.AsyncClient(transport=transport, timeout=timeout_s)


async def until(condition: Callable[[], bool]) -> None:
    """Poll ``condition`` on the loop until it holds, or fail after ``DEADLINE_S``."""
    async with asyncio.timeout(DEADLINE_S):
        while not condition():
            await asyncio.sleep(0.001)


def test_calls_share_one_connection_and_come_back_whole() -> None:
    receiver = Receiver()

    async def main() -> list[httpx.Response]:
        async with serving(receiver) as url, client() as http:
            return [await http.post(url, content=b"x" * size) for size in (0, 10, 5)]

    replies = asyncio.run(main())
    assert [reply.text for reply in replies] == ["0", "10", "5"]
    assert receiver.connections == 1


def test_large_bodies_go_out_and_come_back_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    """Past the buffers both ways: the upload waits while the transport is full, and the
    download (with a small mark, so that it happens) stops the transport reading until
    httpcore catches up."""
    monkeypatch.setattr(asyncio_network, "READ_HIGH_WATER", 1024)
    receiver = Receiver()
    receiver.reply = bytes(range(256)) * (16 * 1024)
    upload = b"u" * (8 * 1024 * 1024)

    async def main() -> tuple[httpx.Response, httpx.Response]:
        async with serving(receiver) as url, client() as http:
            return await http.post(url, content=upload), await http.post(url, content=b"")

    sent, received = asyncio.run(main())
    assert sent.content == receiver.reply and received.content == receiver.reply
    assert receiver.connections == 1


def test_a_connection_the_server_closed_while_idle_is_not_used_again() -> None:
    receiver = Receiver(close_after_answer=True)

    async def main() -> list[str]:
        async with serving(receiver) as url, client() as http:
            first = await http.post(url, content=b"abc")
            pool = http._transport._pool  # type: ignore[attr-defined]
            await until(lambda: all(c.has_expired() for c in pool.idle))
            second = await http.post(url, content=b"abcd")
            return [first.text, second.text]

    assert asyncio.run(main()) == ["3", "4"]
    assert receiver.connections == 2


def test_tls_to_a_trusted_certificate_goes_through_and_to_an_unknown_one_does_not() -> None:
    authority = trustme.CA()
    served = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1").configure_cert(served)
    trusting = ssl.create_default_context()
    authority.configure_trust(trusting)

    async def main() -> tuple[httpx.Response, BaseException]:
        async with serving(Receiver(), served) as url:
            async with client(trusting) as http:
                answer = await http.post(url, content=b"secret")
            async with client() as http:
                with pytest.raises(httpx.ConnectError) as refused:
                    await http.post(url, content=b"secret")
        return answer, refused.value

    answer, refused = asyncio.run(main())
    assert answer.text == "6"
    assert "certificate verify failed" in str(refused)


def test_a_server_that_never_answers_is_a_read_timeout() -> None:
    async def main() -> None:
        async with serving(silent) as url, client(timeout_s=0.2) as http:
            with pytest.raises(httpx.ReadTimeout):
                await http.post(url, content=b"hello")

    asyncio.run(main())


def test_a_server_that_never_shakes_hands_is_a_connect_timeout() -> None:
    async def main() -> None:
        async with serving(silent) as url, client(timeout_s=0.2) as http:
            with pytest.raises(httpx.ConnectTimeout):
                await http.get(url.replace("http://", "https://"))

    asyncio.run(main())


def test_a_server_that_never_reads_is_a_write_timeout() -> None:
    """The upload fills the socket's buffers; the transport stays over its high mark."""
    done = asyncio.Event()

    async def deaf(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await done.wait()
        writer.close()

    async def main() -> None:
        async with serving(deaf) as url:
            async with client(timeout_s=0.2) as http:
                with pytest.raises(httpx.WriteTimeout):
                    await http.post(url, content=b"u" * (64 * 1024 * 1024))
            done.set()

    asyncio.run(main())


def test_a_listener_that_never_accepts_is_a_connect_timeout() -> None:
    """A full accept queue: the kernel drops the next connection's handshake."""
    with socket.socket() as full:
        full.bind(("127.0.0.1", 0))
        full.listen(0)
        port = full.getsockname()[1]
        queued = fill_accept_queue(port)

        async def main() -> None:
            async with client(timeout_s=0.2) as http:
                with pytest.raises(httpx.ConnectTimeout):
                    await http.get(f"http://127.0.0.1:{port}/")

        try:
            asyncio.run(main())
        finally:
            for connection in queued:
                connection.close()


def fill_accept_queue(port: int) -> list[socket.socket]:
    """Connect to ``port`` until the kernel stops completing connections to it."""
    queued: list[socket.socket] = []
    for _ in range(16):
        waiting = socket.socket()
        waiting.settimeout(0.2)
        try:
            waiting.connect(("127.0.0.1", port))
        except TimeoutError:
            waiting.close()
            return queued
        queued.append(waiting)
    raise AssertionError("the listener's accept queue never filled")


def test_a_closed_port_is_a_connect_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    async def main() -> None:
        async with client() as http:
            with pytest.raises(httpx.ConnectError):
                await http.get(f"http://127.0.0.1:{port}/")

    asyncio.run(main())


def test_a_reset_mid_answer_is_a_read_error() -> None:
    async def resets(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial")
        await writer.drain()
        linger = struct.pack("ii", 1, 0)
        writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
        writer.transport.abort()

    async def main() -> int:
        async with serving(resets) as url, client() as http:
            with pytest.raises(httpx.ReadError):
                await http.get(url)
            return len(http._transport._pool.idle)  # type: ignore[attr-defined]

    assert asyncio.run(main()) == 0, "the broken connection is not kept"


def test_a_stream_closed_by_its_owner_refuses_to_read_or_write() -> None:
    async def main() -> tuple[Any, Any]:
        async with serving(Receiver()) as url:
            port = int(url.rsplit(":", 1)[1])
            stream = await AsyncioBackend().connect_tcp("127.0.0.1", port)
            await stream.aclose()
            with pytest.raises(httpcore.ReadError) as read:
                await stream.read(10)
            with pytest.raises(httpcore.WriteError) as written:
                await stream.write(b"GET / HTTP/1.1\r\n\r\n")
        return read.value, written.value

    read, written = asyncio.run(main())
    assert "closed" in str(read) and "closed" in str(written)


def test_a_provider_client_connects_through_the_asyncio_backend(
    routes: Routes, monkeypatch: pytest.MonkeyPatch
) -> None:
    connects: list[tuple[str, int]] = []
    connect_tcp = AsyncioBackend.connect_tcp

    async def counted(self: AsyncioBackend, host: str, port: int, **kwargs: Any) -> Any:
        connects.append((host, port))
        return await connect_tcp(self, host, port, **kwargs)

    monkeypatch.setattr(AsyncioBackend, "connect_tcp", counted)

    async def main() -> tuple[str, int]:
        async with serving(Receiver()) as url:
            async with make_async_client(routes.by_name["openai"], 2) as http:
                answer = await http.post(url, content=b"hi")
            return answer.text, int(url.rsplit(":", 1)[1])

    text, port = asyncio.run(main())
    assert text == "2"
    assert connects == [("127.0.0.1", port)]


def test_a_close_the_loop_has_not_read_is_seen_on_the_socket_of_a_quiet_connection(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A busy loop may not have run the protocol's callbacks when a kept connection is
    picked: one quiet for ``QUIET_S`` is looked at on its socket."""
    monkeypatch.setattr(asyncio_network, "QUIET_S", 0.0)

    async def main() -> tuple[bool, bool]:
        with socket.create_server(("127.0.0.1", 0)) as listener:
            port = listener.getsockname()[1]
            stream = await AsyncioBackend().connect_tcp("127.0.0.1", port)
            accepted, _ = listener.accept()
            open_before = stream.get_extra_info("is_readable")
            accepted.close()
            deadline = time.monotonic() + DEADLINE_S
            while not stream.get_extra_info("is_readable") and time.monotonic() < deadline:
                time.sleep(0.001)  # without yielding: the loop reads nothing meanwhile
            seen = stream.get_extra_info("is_readable")
            assert not stream._ended, "the loop did not see the close"  # type: ignore[attr-defined]
            await stream.aclose()
            return open_before, seen

    assert asyncio.run(main()) == (False, True)
