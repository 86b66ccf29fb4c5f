"""POST a signed body to a vetted receiver.

The request goes to an address the SSRF guard checked a moment ago, not to whatever the
name resolves to next (DNS rebinding); the Host header and TLS server name stay the URL's
own, so virtual hosts and certificates work. Connections are kept alive and reused only
within a pool of that one (scheme, checked address, port, host name): see
``connections``.

Redirects are never followed, and ``timeout_s`` bounds the whole exchange, not each read,
so a receiver that trickles its answer a byte at a time cannot hold a worker thread.
"""

import time
from collections.abc import Iterable
from dataclasses import dataclass

import httpcore
import httpx

from infra.destinations import Destination
from workers.providers.errors import retry_after_s
from workers.webhooks.connections import Connections

EXCERPT_BYTES = 512
USER_AGENT = "genq-webhooks/0.1"
REDIRECTS = frozenset({301, 302, 303, 307, 308})
TRANSPORT_ERRORS = (httpcore.NetworkError, httpcore.ProtocolError, httpcore.UnsupportedProtocol)


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


def post(
    connections: Connections,
    destination: Destination,
    headers: dict[str, str],
    body: bytes,
    timeout_s: float,
) -> Reply:
    url = httpx.URL(destination.url)
    target = httpcore.URL(
        scheme=url.raw_scheme, host=url.raw_host, port=url.port, target=url.raw_path
    )
    headers = {**headers, "host": url.netloc.decode("ascii"), "user-agent": USER_AGENT}
    timeouts = dict.fromkeys(("connect", "read", "write", "pool"), timeout_s)
    started = time.monotonic()
    with connections.pool(destination) as pool, connections.watchdog.exchange(timeout_s) as watched:
        try:
            with pool.stream(
                "POST",
                target,
                headers=headers,
                content=body,
                extensions={"timeout": timeouts},
            ) as response:
                excerpt = _excerpt(response.iter_stream())
                watched.finish()
        except httpcore.TimeoutException:
            return Reply(None, None, f"no answer within {timeout_s:g} s", None, _ms(started))
        except TRANSPORT_ERRORS as exc:
            if time.monotonic() - started >= timeout_s:
                return Reply(None, None, f"no answer within {timeout_s:g} s", None, _ms(started))
            return Reply(None, None, f"{type(exc).__name__}: {exc}"[:300], None, _ms(started))
    answered = httpx.Headers(response.headers)
    error = None
    if response.status in REDIRECTS:
        location = answered.get("location", "")[:200]
        error = f"redirect to {location!r} not followed; set the endpoint's final URL"
    return Reply(response.status, excerpt, error, retry_after_s(answered), _ms(started))


def _excerpt(chunks: Iterable[bytes]) -> str:
    received = b""
    for chunk in chunks:
        received += chunk
        if len(received) >= EXCERPT_BYTES:
            break
    return received[:EXCERPT_BYTES].decode("utf-8", errors="replace")


def _ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)
