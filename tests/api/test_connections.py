"""Connections that never finish their headers, against a live uvicorn server with the limits
of :mod:`vllm_mlx.api.connections`: /health keeps answering, stalled connections are closed
after the header timeout, the cap drops waiting connections first, busy ones get a 503, and
the log lines such clients cause are rate-limited. Every loop is bounded in count and time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import websockets

from tests.live_server import serving
from vllm_mlx.api.connections import (
    ConnectionLimits,
    RateLimitFilter,
    fit_to_fd_limit,
    install_log_limits,
    uvicorn_options,
)
from vllm_mlx.config import Settings

STALLED = 300
HEALTH_BOUND_S = 1.5


@pytest.fixture(scope="module")
def app(tmp_path_factory) -> Any:
    from vllm_mlx.api.app import create_app

    settings = Settings(model="none", storage_path=tmp_path_factory.mktemp("conn-store"))
    return create_app(settings, None)


async def tiny_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """``/slow`` answers after 3 s, ``/ws`` echoes one WebSocket message; the rest is 200."""
    if scope["type"] == "lifespan":
        return
    if scope["type"] == "websocket":
        await receive()
        await send({"type": "websocket.accept"})
        message = await receive()
        await send({"type": "websocket.send", "text": message.get("text")})
        await receive()
        return
    if scope["path"] == "/slow":
        await asyncio.sleep(3)
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


def stall(port: int, count: int, payloads: tuple[bytes, ...] = (b"",)) -> list[socket.socket]:
    """``count`` connections that send one of ``payloads`` (an incomplete request) and wait."""
    socks = []
    for i in range(count):
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        payload = payloads[i % len(payloads)]
        if payload:
            sock.sendall(payload)
        socks.append(sock)
    return socks


def closed_by_server(sock: socket.socket) -> bool:
    """Whether the server answered (a 503) or closed it: recv returns instead of waiting."""
    sock.settimeout(0.01)
    try:
        sock.recv(4096)
        return True
    except TimeoutError:
        return False
    except OSError:  # reset
        return True


def wait_closed(socks: list[socket.socket], within_s: float) -> list[socket.socket]:
    """The sockets still open after ``within_s`` (polled, bounded)."""
    deadline = time.monotonic() + within_s
    open_ = list(socks)
    while open_ and time.monotonic() < deadline:
        open_ = [s for s in open_ if not closed_by_server(s)]
        time.sleep(0.1)
    return open_


@contextlib.contextmanager
def closing(socks: list[socket.socket]) -> Iterator[list[socket.socket]]:
    try:
        yield socks
    finally:
        for sock in socks:
            sock.close()


def health_latency(port: int, path: str = "/health") -> float:
    start = time.monotonic()
    response = httpx.get(f"http://127.0.0.1:{port}{path}", timeout=10)
    assert response.status_code == 200
    return time.monotonic() - start


PARTIAL = (b"", b"GET /health HTTP/1.1\r\nHost: x\r\n", b"POST /v1/chat/completions HT")


def test_stalled_connections_are_timed_out_while_health_answers(app):
    limits = ConnectionLimits(header_timeout_s=1.0, max_connections=1000)
    with serving(app, **uvicorn_options(limits)) as port:
        start = time.monotonic()
        with closing(stall(port, STALLED, PARTIAL)) as socks:
            latencies = [health_latency(port) for _ in range(5)]
            assert max(latencies) < HEALTH_BOUND_S, latencies
            assert wait_closed(socks, within_s=1.0 + 3.0) == []
            assert time.monotonic() - start < 10
        assert health_latency(port) < HEALTH_BOUND_S


def test_a_keep_alive_connection_must_finish_its_next_headers_too(app):
    limits = ConnectionLimits(header_timeout_s=1.0, keep_alive_s=30.0)
    with serving(app, **uvicorn_options(limits)) as port, \
            closing(stall(port, 1, (b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n",))) as socks:
        (sock,) = socks
        sock.settimeout(5)
        assert b"200 OK" in sock.recv(65536)
        sock.sendall(b"GET /health HTTP/1.1\r\nHo")  # then nothing, for ever
        assert wait_closed(socks, within_s=4.0) == []


def test_the_cap_drops_waiting_connections_first(app):
    limits = ConnectionLimits(header_timeout_s=60.0, max_connections=50)
    with serving(app, **uvicorn_options(limits)) as port, \
            closing(stall(port, 120, PARTIAL)) as socks:
        assert health_latency(port) < HEALTH_BOUND_S
        still_open = socks
        for _ in range(30):  # bounded: until the drops have landed
            still_open = [s for s in still_open if not closed_by_server(s)]
            if len(still_open) <= 50:
                break
            time.sleep(0.1)
        assert len(still_open) <= 50  # the oldest ones made room for the newer ones
        assert socks[-1] in still_open


def test_busy_connections_are_not_dropped_and_newcomers_get_503():
    limits = ConnectionLimits(header_timeout_s=60.0, max_connections=3)

    async def scenario(port: int) -> tuple[list[int], int]:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as c:
            busy = [asyncio.create_task(c.get("/slow")) for _ in range(3)]
            await asyncio.sleep(0.5)
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            refused = await asyncio.wait_for(reader.read(), 5)
            writer.close()
            return [r.status_code for r in await asyncio.gather(*busy)], int(refused.split()[1])

    with serving(tiny_app, **uvicorn_options(limits)) as port:
        statuses, refused = asyncio.run(scenario(port))
    assert statuses == [200, 200, 200] and refused == 503


def test_websockets_outlive_the_header_timeout():
    limits = ConnectionLimits(header_timeout_s=0.5, max_connections=2)

    async def scenario(port: int) -> str:
        async with websockets.connect(f"ws://127.0.0.1:{port}/ws") as ws:
            await asyncio.sleep(1.5)
            stalled = await asyncio.open_connection("127.0.0.1", port)  # over the cap
            await ws.send("still here")
            reply = await asyncio.wait_for(ws.recv(), 5)
            stalled[1].close()
            return str(reply)

    with serving(tiny_app, **uvicorn_options(limits)) as port:
        assert asyncio.run(scenario(port)) == "still here"


def test_log_lines_hostile_clients_cause_are_rate_limited():
    limiter = RateLimitFilter(("Invalid HTTP request",), interval_s=0.2)

    def record(msg: str) -> logging.LogRecord:
        return logging.LogRecord("uvicorn.error", logging.WARNING, __file__, 1, msg, None, None)

    passed = [limiter.filter(record("Invalid HTTP request received.")) for _ in range(1000)]
    assert passed.count(True) == 1
    assert limiter.filter(record("something else")) is True
    time.sleep(0.25)
    later = record("Invalid HTTP request received.")
    assert limiter.filter(later) and "999 similar messages suppressed" in later.getMessage()


def test_the_cap_fits_the_file_descriptor_limit(monkeypatch):
    import resource

    def refuse(*_: object) -> None:
        raise ValueError("not allowed")

    monkeypatch.setattr(resource, "getrlimit", lambda _: (256, 256))
    monkeypatch.setattr(resource, "setrlimit", refuse)
    assert fit_to_fd_limit(1000) == 192
    monkeypatch.setattr(resource, "getrlimit", lambda _: (100_000, 100_000))
    assert fit_to_fd_limit(1000) == 1000


def test_an_oversized_request_head_is_a_400(app):
    with serving(app, **uvicorn_options(ConnectionLimits())) as port, \
            closing(stall(port, 1)) as socks:
        (sock,) = socks
        sock.settimeout(5)
        with contextlib.suppress(OSError):  # the server may close before all of it is sent
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 70_000)
        assert sock.recv(65536).startswith(b"HTTP/1.1 400")


def test_accept_failures_are_logged_once_per_interval(caplog):
    install_log_limits()
    install_log_limits()  # idempotent
    noisy = logging.getLogger("asyncio")
    with caplog.at_level(logging.ERROR, logger="asyncio"):
        for _ in range(500):
            noisy.error("socket.accept() out of system resource\nsocket: <socket>",
                        exc_info=OSError(24, "Too many open files"))
    assert len([r for r in caplog.records if r.name == "asyncio"]) <= 1


def read_responses(sock: socket.socket, count: int, within_s: float = 5.0) -> bytes:
    """What the server sent until ``count`` status lines came (bounded in time)."""
    sock.settimeout(0.2)
    received = b""
    deadline = time.monotonic() + within_s
    while received.count(b"HTTP/1.1 ") < count and time.monotonic() < deadline:
        with contextlib.suppress(TimeoutError):
            chunk = sock.recv(65536)
            if not chunk:
                break
            received += chunk
    return received


def test_pipelined_requests_are_answered_in_order_and_not_timed_out():
    limits = ConnectionLimits(header_timeout_s=1.0)
    pipelined = b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\nGET /a HTTP/1.1\r\nHost: x\r\n\r\n"
    with serving(tiny_app, **uvicorn_options(limits)) as port, \
            closing(stall(port, 1, (pipelined,))) as (sock,):
        replies = read_responses(sock, 2, within_s=8.0)  # /slow takes 3 s: past the timeout
        assert replies.count(b"HTTP/1.1 200 OK") == 2, replies
        assert wait_closed([sock], within_s=4.0) == []  # then idle: the clock runs again


async def early_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Answers 401 without reading the request body (as an auth check does)."""
    if scope["type"] == "http":
        await send({"type": "http.response.start", "status": 401, "headers": []})
        await send({"type": "http.response.body", "body": b"no"})


def test_an_unread_body_is_not_taken_for_an_oversized_head():
    limits = ConnectionLimits(header_timeout_s=5.0)
    body = b"x" * 300_000
    head = b"POST /v1/x HTTP/1.1\r\nHost: x\r\ncontent-length: %d\r\n\r\n" % len(body)
    with serving(early_app, **uvicorn_options(limits)) as port, \
            closing(stall(port, 1, (head,))) as (sock,):
        first = read_responses(sock, 1)
        sock.sendall(body + b"GET /b HTTP/1.1\r\nHost: x\r\n\r\n")
        replies = first + read_responses(sock, 1)
        assert replies.count(b"HTTP/1.1 401") == 2 and b" 400 " not in replies, replies


def test_a_websocket_on_a_kept_alive_connection_outlives_the_header_timeout():
    limits = ConnectionLimits(header_timeout_s=0.5, keep_alive_s=30.0)
    upgrade = (b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
               b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
    with serving(tiny_app, **uvicorn_options(limits)) as port, \
            closing(stall(port, 1, (b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n",))) as (sock,):
        assert read_responses(sock, 1).startswith(b"HTTP/1.1 200")
        sock.sendall(upgrade)
        assert b" 101 " in read_responses(sock, 1)
        time.sleep(1.5)
        assert wait_closed([sock], within_s=0.3) == [sock]  # still open
