"""Pooled provider clients: one httpx client per route, made on first use and shared by a
worker's threads, so calls to a provider reuse their connections."""

import threading

import httpx

from schema.routes import Route
from workers.providers import Adapter, adapter_for, make_client


class ProviderClients:
    """The pooled client of each route a worker has called, and the adapters on them."""

    def __init__(self, max_connections: int) -> None:
        self.max_connections = max_connections
        self._clients: dict[str, httpx.Client] = {}
        self._lock = threading.Lock()

    def adapter(self, route: Route) -> Adapter:
        """The route's adapter on the route's pooled client."""
        with self._lock:
            client = self._clients.get(route.name)
            if client is None:
                client = make_client(route, max_connections=self.max_connections)
                self._clients[route.name] = client
        return adapter_for(route, client)

    def close(self) -> None:
        """Close every client made so far."""
        with self._lock:
            for client in self._clients.values():
                client.close()
