"""The polling bench's callback receiver: a small HTTP server the simulator posts provider
callbacks to. Each is verified as genq verifies it (``infra.provider_signatures``: fal's
ED25519 against the simulator's published JWKS, Replicate's Standard Webhooks signature with
the account's secret); a verified one wakes its job's poller, which then polls once."""

import asyncio
from collections import defaultdict
from typing import Any

from infra.provider_signatures import verify_fal_webhook, verify_replicate_webhook
from schema.errors import SignatureError

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
REFUSED = b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n"


class Receiver:
    """Receives fal webhooks at ``{url}/fal`` and Replicate's at ``{url}/replicate`` on a
    free port; ``arrived(job_id)`` is set by a verified one."""

    def __init__(self, jwks: dict[str, Any], replicate_secret: str) -> None:
        self.jwks = jwks
        self.replicate_secret = replicate_secret
        self.url = ""
        self.events: defaultdict[str, asyncio.Event] = defaultdict(asyncio.Event)
        self.verified = 0
        self.refused = 0
        self.server: asyncio.Server | None = None

    async def start(self) -> None:
        """Listen on a free port (within the running event loop)."""
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    def close(self) -> None:
        if self.server is not None:
            self.server.close()

    def arrived(self, job_id: str) -> asyncio.Event:
        """Set once a verified callback for job_id came."""
        return self.events[job_id]

    def _job_of(self, path: str, headers: dict[str, str], body: bytes) -> str:
        if path == "/replicate":
            return verify_replicate_webhook(headers, body, self.replicate_secret).provider_job_id
        return verify_fal_webhook(headers, body, self.jwks)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
                headers = {
                    name.lower(): value
                    for name, value in (line.split(": ", 1) for line in head[1:] if line)
                }
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                try:
                    job_id = self._job_of(head[0].split()[1], headers, body)
                except SignatureError:
                    self.refused += 1
                    writer.write(REFUSED)
                    continue
                self.verified += 1
                self.events[job_id].set()
                writer.write(OK)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()
