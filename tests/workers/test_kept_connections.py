"""A provider client's kept connections: as many as the calls in flight, reused by the
next calls, kept up to their bound and their keep-alive, and never one that cannot carry
another request."""

import asyncio
import inspect

import httpx
import pytest
from httpcore import AsyncHTTP11Connection

from infra import tls
from tests.workers.test_asyncio_network import Receiver, serving, until
from workers.providers.asyncio_network import AsyncioTransport
from workers.providers.kept_connections import KeptConnections


def client(kept: int, keepalive_s: float = 60) -> httpx.AsyncClient:
    limits = httpx.Limits(
        max_connections=kept, max_keepalive_connections=kept, keepalive_expiry=keepalive_s
    )
    return httpx.AsyncClient(transport=AsyncioTransport(tls.client_context(), limits))


def pool_of(http: httpx.AsyncClient) -> KeptConnections:
    return http._transport._pool  # type: ignore[attr-defined, no-any-return]


async def wave(http: httpx.AsyncClient, url: str, calls: int) -> list[str]:
    answers = await asyncio.gather(*(http.post(url, content=b"x" * n) for n in range(calls)))
    return [answer.text for answer in answers]


def test_calls_in_flight_open_a_connection_each_and_the_next_calls_reuse_them() -> None:
    receiver = Receiver()

    async def main() -> tuple[list[str], list[str], int]:
        async with serving(receiver) as url, client(8) as http:
            first = await wave(http, url, 8)
            second = await wave(http, url, 8)
            return first, second, len(pool_of(http).idle)

    first, second, idle = asyncio.run(main())
    assert first == second == [str(n) for n in range(8)]
    assert receiver.connections == 8
    assert idle == 8


def test_connections_past_the_bound_are_closed_when_their_answers_end() -> None:
    receiver = Receiver()

    async def main() -> tuple[int, int]:
        async with serving(receiver) as url, client(2) as http:
            await wave(http, url, 4)
            kept = len(pool_of(http).idle)
            await wave(http, url, 4)
            return kept, len(pool_of(http).idle)

    kept_after_first, kept_after_second = asyncio.run(main())
    assert kept_after_first == kept_after_second == 2
    assert receiver.connections == 6, "the second calls found two kept and opened two"


def test_a_connection_past_its_keep_alive_is_closed_and_a_new_one_opened() -> None:
    receiver = Receiver()

    async def main() -> list[str]:
        async with serving(receiver) as url, client(4, keepalive_s=0.01) as http:
            first = await http.post(url, content=b"ab")
            expired = pool_of(http).idle
            await until(lambda: all(connection.has_expired() for connection in expired))
            second = await http.post(url, content=b"abc")
            assert all(connection.is_closed() for connection in expired)
            return [first.text, second.text]

    assert asyncio.run(main()) == ["2", "3"]
    assert receiver.connections == 2


def test_an_answer_that_closes_its_connection_leaves_nothing_kept() -> None:
    async def closes(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()
        writer.close()

    async def main() -> tuple[str, int]:
        async with serving(closes) as url, client(4) as http:
            answer = await http.get(url)
            return answer.text, len(pool_of(http).idle)

    assert asyncio.run(main()) == ("ok", 0)


def test_closed_connections_refuse_calls_and_close_an_answer_given_back_after() -> None:
    receiver = Receiver()

    async def main() -> tuple[bool, bool]:
        async with serving(receiver) as url, client(4) as http:
            pool = pool_of(http)
            await http.post(url, content=b"a")
            kept = pool.idle
            async with http.stream("POST", url, content=b"b") as answering:
                await pool.aclose()
                await answering.aread()
                in_flight = answering.extensions["network_stream"]
            with pytest.raises(RuntimeError, match="closed"):
                await pool.handle_async_request(answering.request)  # type: ignore[arg-type]
            return all(connection.is_closed() for connection in kept), in_flight._closed

    kept_closed, answer_closed = asyncio.run(main())
    assert kept_closed and answer_closed


def test_a_kept_connections_state_lock_takes_no_turn_of_the_loop_when_free() -> None:
    for guarded in (
        AsyncHTTP11Connection.handle_async_request,
        AsyncHTTP11Connection._response_closed,
    ):
        assert "async with self._state_lock" in inspect.getsource(guarded), (
            "httpcore moved its lock"
        )
    receiver = Receiver()

    async def main() -> list[bool]:
        async with serving(receiver) as url, client(1) as http:
            await http.post(url, content=b"ab")
            (connection,) = pool_of(http).idle
            turns: list[bool] = []
            other = asyncio.get_running_loop().call_soon(turns.append, True)
            async with connection._state_lock:
                ran_meanwhile = bool(turns)
            other.cancel()
            return [ran_meanwhile, (await http.post(url, content=b"abc")).text == "3"]

    assert asyncio.run(main()) == [False, True]
