"""POST a signed body to a vetted receiver.

The request goes to an address the SSRF guard checked a moment ago, not to whatever the
name resolves to next (DNS rebinding); the Host header and TLS server name stay the URL's
own, so virtual hosts and certificates work. Since the connection is made to an address,
it is never kept for another request: a pooled connection would be reused for any other
host on that address, under a certificate checked for the first one.

Redirects are never followed, and ``timeout_s`` bounds the whole exchange, not each read,
so a receiver that trickles its answer a byte at a time cannot hold a worker thread.
"""

import contextlib
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from infra.destinations import Destination
from workers.providers.errors import retry_after_s

EXCERPT_BYTES = 512


@dataclass(frozen=True)
class Reply:
    """What one POST came to: a status and a short excerpt, or a transport error."""

    status_code: int | None
    excerpt: str | None
    error: str | None
    retry_after_s: float | None
    duration_ms: int

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def make_client(max_connections: int) -> httpx.Client:
    return httpx.Client(
        follow_redirects=False,
        limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=0),
        headers={"user-agent": "genq-webhooks/0.1"},
        trust_env=False,
    )


def post(
    client: httpx.Client,
    destination: Destination,
    headers: dict[str, str],
    body: bytes,
    timeout_s: float,
) -> Reply:
    url = httpx.URL(destination.url)
    pinned = url.copy_with(host=destination.addresses[0])
    streams: list[Any] = []
    extensions: dict[str, Any] = {"trace": _keep_streams(streams)}
    if url.scheme == "https":
        extensions["sni_hostname"] = destination.host
    watchdog = threading.Timer(timeout_s, _cut, args=(streams,))
    started = time.monotonic()
    watchdog.start()
    try:
        with client.stream(
            "POST",
            pinned,
            content=body,
            headers={**headers, "host": url.netloc.decode("ascii")},
            extensions=extensions,
            timeout=timeout_s,
        ) as response:
            excerpt = _excerpt(response)
    except httpx.HTTPError as exc:
        if isinstance(exc, httpx.TimeoutException) or time.monotonic() - started >= timeout_s:
            return Reply(None, None, f"no answer within {timeout_s:g} s", None, _ms(started))
        return Reply(None, None, f"{type(exc).__name__}: {exc}"[:300], None, _ms(started))
    finally:
        watchdog.cancel()
    error = None
    if response.is_redirect:
        location = response.headers.get("location", "")[:200]
        error = f"redirect to {location!r} not followed; set the endpoint's final URL"
    return Reply(
        response.status_code, excerpt, error, retry_after_s(response.headers), _ms(started)
    )


def _keep_streams(streams: list[Any]) -> Callable[[str, dict[str, Any]], None]:
    """An httpcore trace hook that collects the request's network streams (TCP, then TLS)."""

    def trace(event: str, info: dict[str, Any]) -> None:
        if event in ("connection.connect_tcp.complete", "connection.start_tls.complete"):
            streams.append(info["return_value"])

    return trace


def _cut(streams: list[Any]) -> None:
    """Shut the request's sockets down, which wakes the thread blocked reading them."""
    for stream in streams:
        with contextlib.suppress(OSError):
            stream.get_extra_info("socket").shutdown(socket.SHUT_RDWR)


def _excerpt(response: httpx.Response) -> str:
    received = b""
    for chunk in response.iter_raw():
        received += chunk
        if len(received) >= EXCERPT_BYTES:
            break
    return received[:EXCERPT_BYTES].decode("utf-8", errors="replace")


def _ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)
