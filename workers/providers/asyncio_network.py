"""httpcore's network layer on asyncio's own transports, for the provider clients on the
worker's call loop.

On asyncio, httpcore reaches the network through AnyIO: a cancel scope around every read
and write, a dictionary of socket attributes built for each lookup, and a poll of each
idle connection's socket whenever the pool hands a connection out. Measured against the
simulator here, that was 0.7 to 0.9 ms of a provider call's 2.1 to 3.2 ms of CPU. This layer
does the same on a protocol of its own: the loop hands it what arrives as it arrives, a
timeout is ``asyncio.timeout`` only when a read or write has to wait, and an idle
connection the server closed or wrote to is known from that, without a system call.

httpcore raises its own errors from here (``ConnectError``, ``ReadTimeout``...), which
httpx turns into its own, as with AnyIO.
"""

import asyncio
import select
import socket
import ssl
import time
from collections.abc import Iterable
from typing import Any

import httpcore
import httpx

from workers.providers.kept_connections import KeptConnections

# Received bytes held for httpcore before the transport stops reading; it reads 64 KiB
# at a time.
READ_HIGH_WATER = 256 * 1024
HAPPY_EYEBALLS_S = 0.25
# An idle connection quiet longer than this is looked at on its socket before it is used
# again: a server closing it at its keep-alive timeout may have sent its FIN while a busy
# loop had not yet read it. One used within this is taken as it is, without a system call.
QUIET_S = 1.0
# httpcore's names for what it asks of a stream, and asyncio's for the same.
EXTRA_INFO = {
    "ssl_object": "ssl_object",
    "client_addr": "sockname",
    "server_addr": "peername",
    "socket": "socket",
}


class AsyncioStream(asyncio.Protocol, httpcore.AsyncNetworkStream):
    """One connection: the bytes its transport received, kept until httpcore reads them."""

    def __init__(self) -> None:
        self._transport: asyncio.Transport | None = None
        self._received = bytearray()
        self._ended = False
        self._error: Exception | None = None
        self._closed = False
        self._last_read = time.monotonic()
        self._reading_paused = False
        self._writing_paused = False
        self._waiter: asyncio.Future[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self._received += data
        if len(self._received) > READ_HIGH_WATER and not self._reading_paused:
            self._reading_paused = True
            self._transport.pause_reading()  # type: ignore[union-attr]
        self._wake()

    def eof_received(self) -> None:
        self._ended = True
        self._wake()

    def connection_lost(self, exc: Exception | None) -> None:
        self._ended = True
        self._error = exc
        self._wake()

    def pause_writing(self) -> None:
        self._writing_paused = True

    def resume_writing(self) -> None:
        self._writing_paused = False
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def _wait(self, timeout: float | None, timed_out: type[Exception]) -> None:
        """Until the transport next calls back, or ``timed_out`` after ``timeout``."""
        self._waiter = asyncio.get_running_loop().create_future()
        try:
            async with asyncio.timeout(timeout):
                await self._waiter
        except TimeoutError:
            raise timed_out(f"no progress in {timeout} s") from None
        finally:
            self._waiter = None

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        """Up to ``max_bytes`` received bytes, waiting for some if none are here; ``b""``
        once the peer has ended the connection."""
        if self._closed:
            raise httpcore.ReadError("the connection is closed")
        while not self._received and not self._ended:
            await self._wait(timeout, httpcore.ReadTimeout)
        if not self._received:
            if self._error is not None:
                raise httpcore.ReadError(str(self._error) or type(self._error).__name__)
            return b""
        self._last_read = time.monotonic()
        data = bytes(self._received[:max_bytes])
        del self._received[:max_bytes]
        if self._reading_paused and len(self._received) <= READ_HIGH_WATER:
            self._reading_paused = False
            self._transport.resume_reading()  # type: ignore[union-attr]
        return data

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        """Hand ``buffer`` to the transport; wait while its buffer is over its high mark."""
        if not buffer:
            return
        if self._closed or self._transport is None or self._transport.is_closing():
            raise httpcore.WriteError("the connection is closed")
        self._transport.write(buffer)
        while self._writing_paused:
            await self._wait(timeout, httpcore.WriteTimeout)
            if self._error is not None or self._transport.is_closing():
                raise httpcore.WriteError(str(self._error or "the connection closed"))

    async def aclose(self) -> None:
        self._closed = True
        if self._transport is not None:
            self._transport.close()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.AsyncNetworkStream:
        """TLS over this connection; the same stream, now reading and writing through it."""
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout):
                tls = await loop.start_tls(
                    self._transport,  # type: ignore[arg-type]
                    self,
                    ssl_context,
                    server_hostname=server_hostname,
                )
        except TimeoutError:
            await self.aclose()
            raise httpcore.ConnectTimeout(f"no TLS handshake in {timeout} s") from None
        except OSError as exc:
            await self.aclose()
            raise httpcore.ConnectError(str(exc)) from exc
        self._transport = tls  # type: ignore[assignment]
        return self

    def get_extra_info(self, info: str) -> Any:
        """What httpcore asks of a connection. ``is_readable`` is asked of idle ones only:
        anything received or an end while idle means the server is closing it; after
        ``QUIET_S`` without a read, so may bytes on the socket the loop has not read yet."""
        if info == "is_readable":
            if self._received or self._ended:
                return True
            return time.monotonic() - self._last_read > QUIET_S and self._socket_readable()
        name = EXTRA_INFO.get(info)
        if name is None or self._transport is None:
            return None
        return self._transport.get_extra_info(name)

    def _socket_readable(self) -> bool:
        connected = self._transport.get_extra_info("socket") if self._transport else None
        if connected is None:
            return True
        poll = select.poll()
        poll.register(connected.fileno(), select.POLLIN)
        return bool(poll.poll(0))


class AsyncioBackend(httpcore.AsyncNetworkBackend):
    """TCP connections as ``AsyncioStream``\\ s on the running loop."""

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[tuple[int, int, int | bytes]] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout):
                _, stream = await loop.create_connection(
                    AsyncioStream,
                    host,
                    port,
                    local_addr=(local_address, 0) if local_address else None,
                    happy_eyeballs_delay=HAPPY_EYEBALLS_S,
                )
        except TimeoutError:
            raise httpcore.ConnectTimeout(f"no connection in {timeout} s") from None
        except OSError as exc:
            raise httpcore.ConnectError(str(exc)) from exc
        if socket_options:
            connected: socket.socket = stream.get_extra_info("socket")
            for option in socket_options:
                connected.setsockopt(*option)
        return stream

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class AsyncioTransport(httpx.AsyncHTTPTransport):
    """httpx's transport on ``KeptConnections`` over ``AsyncioBackend``.

    httpx builds its pool itself and takes no network backend, so the pool it made is
    replaced; everything else (requests and responses between httpx and httpcore, errors
    mapped to httpx's) is httpx's own. ``limits.max_connections`` is not enforced: the
    call loop's places bound the calls; up to ``max_keepalive_connections`` are kept.
    """

    def __init__(self, verify: ssl.SSLContext, limits: httpx.Limits) -> None:
        super().__init__(verify=verify, limits=limits)
        self._pool = KeptConnections(  # type: ignore[assignment]
            verify,
            limits.max_keepalive_connections,
            limits.keepalive_expiry,
            AsyncioBackend(),
        )
