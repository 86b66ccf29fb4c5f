"""A local fake AI provider speaking real wire protocols, for demos, tests and benches.

It answers like the provider would (same bodies, errors and headers) but
deterministically and for free. Product code never imports it; it is only
ever reached over HTTP.
"""

from simulator.app import create_app
from simulator.config import SimConfig
from simulator.server import SimServer, serve

__all__ = ["SimConfig", "SimServer", "create_app", "serve"]
