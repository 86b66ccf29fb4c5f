"""Kept-alive connections to vetted receivers, pooled per checked address.

A delivery connects to the address the SSRF guard checked, not to whatever the name
resolves to next. A pooled connection is safe to reuse only for a request that would have
made the very same connection, so each pool serves one (scheme, checked address, port,
host name): its network backend connects to that address alone, and the host name is the
URL's own, which sets the Host header and the TLS server name (and the certificate checked
against it). Another host on the same address gets a pool of its own, and a name that now
resolves elsewhere gets a new pool, never the old connection.

The pools sit in a bounded LRU; an evicted pool closes once no request is using it.

Their network streams note their sockets for the ``watchdog``, which bounds each
request's whole exchange, kept-alive connections included.
"""

import contextlib
import ssl
import threading
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import httpcore

from infra import tls
from infra.destinations import Destination
from workers.webhooks import watchdog

MAX_POOLS = 64
# Under the 5 s after which common servers (Node's default) close an idle connection, so a
# request rarely meets a connection the receiver is closing.
KEEPALIVE_EXPIRY_S = 4.0

PoolKey = tuple[str, str, int, str]


class _NotedStream(httpcore.NetworkStream):
    """A network stream that notes its socket in the current exchange before any I/O."""

    def __init__(self, stream: httpcore.NetworkStream) -> None:
        self._stream = stream

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        self._note()
        return self._stream.read(max_bytes, timeout)

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._note()
        self._stream.write(buffer, timeout)

    def close(self) -> None:
        self._stream.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        self._note()
        return _NotedStream(self._stream.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)

    def _note(self) -> None:
        watchdog.note(self._stream.get_extra_info("socket"))


class _PinnedBackend(httpcore.NetworkBackend):
    """Connects every request of its pool to one checked address, whatever the URL's host."""

    def __init__(self, address: str) -> None:
        self._address = address
        self._backend = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        stream = self._backend.connect_tcp(
            self._address, port, timeout, local_address, socket_options
        )
        return _NotedStream(stream)


@dataclass
class _Entry:
    pool: httpcore.ConnectionPool
    users: int = 0
    evicted: bool = False


class Connections:
    """Connection pools keyed by (scheme, checked address, port, host), least recently
    used evicted past ``max_pools``."""

    def __init__(self, max_connections: int, max_keepalive: int, max_pools: int = MAX_POOLS):
        self._max_connections = max_connections
        self._max_keepalive = max_keepalive
        self._max_pools = max_pools
        self._ssl_context = tls.client_context()
        self._entries: OrderedDict[PoolKey, _Entry] = OrderedDict()
        self._lock = threading.Lock()
        self.watchdog = watchdog.Watchdog()

    @contextlib.contextmanager
    def pool(self, destination: Destination) -> Iterator[httpcore.ConnectionPool]:
        """The pool for the destination's first checked address, held until the block ends."""
        key = (destination.scheme, destination.addresses[0], destination.port, destination.host)
        entry = self._take(key)
        try:
            yield entry.pool
        finally:
            self._give_back(entry)

    def close(self) -> None:
        with self._lock:
            entries = list(self._entries.values())
            self._entries.clear()
        for entry in entries:
            entry.pool.close()
        self.watchdog.close()

    def _take(self, key: PoolKey) -> _Entry:
        evicted: list[_Entry] = []
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                entry = self._entries[key] = _Entry(self._new_pool(key[1]))
            self._entries.move_to_end(key)
            entry.users += 1
            while len(self._entries) > self._max_pools:
                _, old = self._entries.popitem(last=False)
                old.evicted = True
                if old.users == 0:
                    evicted.append(old)
        for old in evicted:
            old.pool.close()
        return entry

    def _give_back(self, entry: _Entry) -> None:
        with self._lock:
            entry.users -= 1
            idle_and_evicted = entry.evicted and entry.users == 0
        if idle_and_evicted:
            entry.pool.close()

    def _new_pool(self, address: str) -> httpcore.ConnectionPool:
        return httpcore.ConnectionPool(
            ssl_context=self._ssl_context,
            max_connections=self._max_connections,
            max_keepalive_connections=self._max_keepalive,
            keepalive_expiry=KEEPALIVE_EXPIRY_S,
            network_backend=_PinnedBackend(address),
        )
