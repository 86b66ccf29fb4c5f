"""The watchdog that bounds a webhook request's whole exchange: it shuts down the sockets
of an exchange past its deadline, and never those of one that has finished."""

import socket
from collections.abc import Iterator

import pytest

from workers.webhooks.watchdog import Exchange, Watchdog, note


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    ours, theirs = socket.socketpair()
    with ours, theirs:
        yield ours, theirs


@pytest.mark.timeout(30)
def test_an_exchange_past_its_deadline_is_cut(pair) -> None:
    ours, _ = pair
    watchdog = Watchdog()
    try:
        with watchdog.exchange(timeout_s=0.2):
            note(ours)
            received = ours.recv(1)  # nothing comes: only the cut wakes it
    finally:
        watchdog.close()

    assert received == b""


def test_a_finished_exchange_is_never_cut(pair) -> None:
    ours, theirs = pair
    exchange = Exchange()
    exchange.note(ours)

    exchange.finish()
    exchange.cut()
    theirs.sendall(b"x")

    assert ours.recv(1) == b"x"
