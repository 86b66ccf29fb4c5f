"""POST a signed body to a vetted receiver.

The request goes to an address the SSRF guard checked a moment ago, not to whatever the
name resolves to next (DNS rebinding); the Host header and TLS server name stay the URL's
own, so virtual hosts and certificates work. Redirects are never followed.
"""

import time
from dataclasses import dataclass

import httpx

from schema.destinations import Destination
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
        limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=20),
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
    extensions = {"sni_hostname": destination.host} if url.scheme == "https" else {}
    started = time.monotonic()
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
    except httpx.TimeoutException:
        return Reply(None, None, f"no answer within {timeout_s:g} s", None, _ms(started))
    except httpx.TransportError as exc:
        return Reply(None, None, f"{type(exc).__name__}: {exc}"[:300], None, _ms(started))
    error = None
    if response.is_redirect:
        location = response.headers.get("location", "")[:200]
        error = f"redirect to {location!r} not followed; set the endpoint's final URL"
    return Reply(
        response.status_code, excerpt, error, retry_after_s(response.headers), _ms(started)
    )


def _excerpt(response: httpx.Response) -> str:
    received = b""
    for chunk in response.iter_bytes():
        received += chunk
        if len(received) >= EXCERPT_BYTES:
            break
    return received[:EXCERPT_BYTES].decode("utf-8", errors="replace")


def _ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)
