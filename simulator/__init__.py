"""A local fake AI provider speaking real wire protocols, for demos, tests and benches.

It answers like the provider would (same bodies, errors and headers) but
deterministically and for free. Product code never imports it; it is only
ever reached over HTTP.

Served under /v1: OpenAI chat completions, images, videos and models; Google Veo;
Anthropic messages; Replicate predictions. fal's queue host is served under /fal
(see `simulator.fal_queue`). Each enforces per-key rate limits
and can be made to fail on purpose (see `simulator.faults`). Under /_sim the
simulator answers about itself (see `simulator.control`).
"""

from simulator.app import create_app
from simulator.config import SimConfig
from simulator.server import SimServer, serve

__all__ = ["SimConfig", "SimServer", "create_app", "serve"]
