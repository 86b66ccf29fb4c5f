"""What every router reads from the app: the producer ``create_app`` was given, which holds
the database, the broker, Redis, the routes and the store services."""

from fastapi import Request

from producers.producer import Producer


def producer_of(request: Request) -> Producer:
    producer: Producer = request.app.state.producer
    return producer
