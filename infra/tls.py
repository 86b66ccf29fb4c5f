"""One TLS context per process for every outbound client.

httpx loads the CA bundle into a new context for each client it makes, tens of
milliseconds of CPU each time; a worker making a client per ten calls in flight, or an API
making one per app, would pay that again and again. A context may be shared by clients and
threads.
"""

import functools
import ssl

import httpx


@functools.cache
def client_context() -> ssl.SSLContext:
    """httpx's default TLS context (certificates verified against its CA bundle), made once."""
    return httpx.create_ssl_context()
