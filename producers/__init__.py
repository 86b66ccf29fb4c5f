"""The way in: the HTTP API and the Python producer.
May import: store, infra, schema (never workers)."""

from producers.producer import Producer

__all__ = ["Producer"]
