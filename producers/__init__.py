"""The way in: the HTTP API, the Python producer and the transactional outbox relay."""

from producers.producer import Producer

__all__ = ["Producer"]
