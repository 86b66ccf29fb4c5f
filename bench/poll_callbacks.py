"""The polling bench's callback receiver: a small HTTP server the simulator posts provider
callbacks to. Each is verified as genq verifies it (fal: ED25519 against the simulator's
published JWKS); a verified one wakes the job's poller, which then polls once."""

import asyncio
from collections import defaultdict
from typing import Any

from workers.providers.fal_webhooks import FalWebhookError, verify_fal_webhook

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
REFUSED = b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n"


class Receiver:
    """Receives fal webhooks on a free port; ``arrived(request_id)`` is set by a verified
    one."""

    def __init__(self, jwks: dict[str, Any]) -> None:
        self.jwks = jwks
        self.url = ""
        self.events: defaultdict[str, asyncio.Event] = defaultdict(asyncio.Event)
        self.verified = 0
        self.refused = 0
        self.server: asyncio.Server | None = None

    async def start(self) -> None:
        """Listen on a free port (within the running event loop)."""
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}/fal"

    def close(self) -> None:
        if self.server is not None:
            self.server.close()

    def arrived(self, request_id: str) -> asyncio.Event:
        """Set once a verified callback for request_id came."""
        return self.events[request_id]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
                headers = dict(line.split(": ", 1) for line in head[1:] if line)
                lowered = {name.lower(): value for name, value in headers.items()}
                body = await reader.readexactly(int(lowered.get("content-length", "0")))
                try:
                    request_id = verify_fal_webhook(lowered, body, self.jwks)
                except FalWebhookError:
                    self.refused += 1
                    writer.write(REFUSED)
                    continue
                self.verified += 1
                self.events[request_id].set()
                writer.write(OK)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()
