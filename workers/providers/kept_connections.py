"""Keep-alive HTTP/1.1 connections for a provider client on the call loop, taken and given
back without looking at the others.

httpcore's pool serves callers that may outnumber its connections: it queues requests, and
whenever one starts or ends it looks at every connection it holds, under a lock, with a
cancel shield around each close. On the call loop no request ever waits for a connection
(the loop's places bound the calls), so that work buys nothing, and at hundreds of
connections it was a quarter of a loaded worker's time. Here a request takes the idle
connection its origin used last (the one least likely to have been closed by the server),
or opens one; the close of its response gives the connection back if it can carry another
request, keeping ``max_idle`` per origin at most (None: no bound). An idle connection past
its keep-alive, or one the server closed or wrote to while it sat idle, is closed when met.

A kept connection carries one request at a time, so the lock httpcore guards its state
with is never contended; but anyio's lock, as httpcore makes it, gives the event loop a
turn on every acquire, free or not: two turns per request, a twentieth of a loaded
worker's time. The lock of a connection opened here takes no turn when it is free.
"""

import ssl
from collections.abc import AsyncIterable, AsyncIterator
from types import TracebackType

import anyio
import httpcore
from httpcore import AsyncHTTP11Connection

Place = tuple[bytes, bytes, int]


def place(origin: httpcore.Origin) -> Place:
    """``origin`` as a key (httpcore's origins compare equal but do not hash)."""
    return origin.scheme, origin.host, origin.port


class KeptConnections:
    """Connections of one client, on ``backend``, over TLS with ``ssl_context`` for
    https origins."""

    def __init__(
        self,
        ssl_context: ssl.SSLContext,
        max_idle: int | None,
        keepalive_expiry: float | None,
        backend: httpcore.AsyncNetworkBackend,
    ) -> None:
        self._ssl_context = ssl_context
        self._max_idle = max_idle
        self._keepalive_expiry = keepalive_expiry
        self._backend = backend
        self._idle: dict[Place, list[AsyncHTTP11Connection]] = {}
        self._closed = False

    @property
    def idle(self) -> list[AsyncHTTP11Connection]:
        """The connections kept for a next request, every origin's."""
        return [connection for kept in self._idle.values() for connection in kept]

    async def handle_async_request(self, request: httpcore.Request) -> httpcore.Response:
        if self._closed:
            raise RuntimeError("the client's connections are closed")
        origin = request.url.origin
        connection = await self._take(origin) or await self._open(origin, request)
        response = await connection.handle_async_request(request)
        return httpcore.Response(
            status=response.status,
            headers=response.headers,
            content=GivenBack(response.stream, self, connection, origin),
            extensions=response.extensions,
        )

    async def _take(self, origin: httpcore.Origin) -> AsyncHTTP11Connection | None:
        idle = self._idle.get(place(origin))
        while idle:
            connection = idle.pop()
            if not connection.has_expired():
                return connection
            await connection.aclose()
        return None

    async def _open(
        self, origin: httpcore.Origin, request: httpcore.Request
    ) -> AsyncHTTP11Connection:
        """A new connection to ``origin``, within the request's connect timeout (TCP and
        TLS each)."""
        timeout = request.extensions.get("timeout", {}).get("connect")
        host = origin.host.decode("ascii")
        stream = await self._backend.connect_tcp(host, origin.port, timeout=timeout)
        if origin.scheme == b"https":
            self._ssl_context.set_alpn_protocols(["http/1.1"])
            server_hostname = request.extensions.get("sni_hostname") or host
            try:
                stream = await stream.start_tls(self._ssl_context, server_hostname, timeout)
            except BaseException:
                await stream.aclose()
                raise
        connection = AsyncHTTP11Connection(origin, stream, self._keepalive_expiry)
        connection._state_lock = anyio.Lock(fast_acquire=True)  # type: ignore[assignment]
        return connection

    async def give_back(self, connection: AsyncHTTP11Connection, origin: httpcore.Origin) -> None:
        """Keep ``connection`` for the next request to ``origin`` if it can carry one and
        there is room; close it otherwise."""
        idle = self._idle.setdefault(place(origin), [])
        full = self._max_idle is not None and len(idle) >= self._max_idle
        if self._closed or full or not connection.is_idle():
            await connection.aclose()
        else:
            idle.append(connection)

    async def aclose(self) -> None:
        """Close every idle connection; one still answering is closed when given back."""
        self._closed = True
        idle, self._idle = self._idle, {}
        for connections in idle.values():
            for connection in connections:
                await connection.aclose()

    async def __aenter__(self) -> "KeptConnections":
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None = None,
        exc_value: BaseException | None = None,
        traceback: TracebackType | None = None,
    ) -> None:
        await self.aclose()


class GivenBack:
    """A response's body; its close gives the connection back."""

    def __init__(
        self,
        stream: AsyncIterable[bytes],
        pool: KeptConnections,
        connection: AsyncHTTP11Connection,
        origin: httpcore.Origin,
    ) -> None:
        self._stream = stream
        self._pool = pool
        self._connection: AsyncHTTP11Connection | None = connection
        self._origin = origin

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for part in self._stream:
            yield part

    async def aclose(self) -> None:
        await self._stream.aclose()  # type: ignore[attr-defined]
        connection, self._connection = self._connection, None
        if connection is not None:
            await self._pool.give_back(connection, self._origin)
