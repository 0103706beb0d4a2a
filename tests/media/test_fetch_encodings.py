"""Compressed response bombs: every Content-Encoding is inflated piece by piece and cut off at
the media cap, or refused, in bounded time and memory, without stalling the event loop.

A loopback server answers every request with a compressed body, whatever ``Accept-Encoding``
said (the fetcher asks for ``identity``). The bombs inflate to 1 GiB, 50x the image cap.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import threading
import time
import zlib
from collections.abc import Awaitable, Iterator
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import psutil
import pytest

from vllm_mlx.media import MediaFetchError, MediaPolicy, MediaTooLarge, load_source
from vllm_mlx.media.bombs import compression_bomb
from vllm_mlx.media.encoding import decoder_for
from vllm_mlx.media.testing import make_test_image

GIB = 1 << 30
PNG = make_test_image(16, 16, "rgb")
POLICY = MediaPolicy(allow_private_urls=True)
CODINGS = ["gzip", "x-gzip", "deflate", "deflate-raw", "br"]
TIME_BOUND_S = 5.0
RSS_BOUND = 200 * 1024 * 1024  # the 20 MiB cap plus slack; an inflated bomb would be 1 GiB
LAG_BOUND_S = 0.25


@cache
def bomb(coding: str) -> bytes:
    return compression_bomb(GIB, "gzip" if coding == "x-gzip" else coding)


def encoded_png(coding: str) -> bytes:
    if coding in ("gzip", "x-gzip"):
        return gzip.compress(PNG)
    if coding == "deflate":
        return zlib.compress(PNG)
    if coding == "deflate-raw":
        return zlib.compress(PNG, wbits=-zlib.MAX_WBITS)
    import brotli

    return bytes(brotli.compress(PNG))


class Handler(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass

    def handle(self) -> None:
        with contextlib.suppress(OSError):  # the client hangs up at its cap
            super().handle()

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        _, kind, coding = self.path.split("/", 2)
        body = bomb(coding) if kind == "bomb" else encoded_png(coding)
        if kind == "other":
            body = b"\x28\xb5\x2f\xfd" + b"\x00" * 64  # any bytes: never decoded
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Content-Encoding", coding.replace("deflate-raw", "deflate"))
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    for coding in CODINGS:
        bomb(coding)  # built before any measurement
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_port}"
    httpd.shutdown()
    httpd.server_close()


async def watched(*urls: str) -> tuple[list[BaseException | object], float, int]:
    """Fetch ``urls`` at once (with a shared client, as the server does): their outcomes, the
    event loop's worst lag, and the peak RSS growth."""
    async with httpx.AsyncClient() as client:
        return await _watched(asyncio.gather(
            *(load_source(url, kind="image", policy=POLICY, client=client) for url in urls),
            return_exceptions=True))


async def _watched(coro: Awaitable[list[Any]]) -> tuple[list[BaseException | object], float, int]:
    process = psutil.Process()
    base = process.memory_info().rss
    lag, peak, done = 0.0, base, False

    async def tick() -> None:
        nonlocal lag, peak
        while not done:
            start = time.monotonic()
            await asyncio.sleep(0.01)
            lag = max(lag, time.monotonic() - start - 0.01)
            peak = max(peak, process.memory_info().rss)

    ticker = asyncio.create_task(tick())
    outcome = await coro
    done = True
    await ticker
    return outcome, lag, max(peak, process.memory_info().rss) - base


@pytest.mark.parametrize("coding", CODINGS)
def test_bomb_is_cut_off_at_the_cap(server, coding):
    start = time.monotonic()
    (outcome,), lag, grown = asyncio.run(watched(f"{server}/bomb/{coding}"))
    elapsed = time.monotonic() - start
    assert isinstance(outcome, MediaTooLarge), outcome
    assert outcome.status_code == 413 and "limit" in str(outcome)
    assert elapsed < TIME_BOUND_S, elapsed
    assert grown < RSS_BOUND, f"RSS grew {grown / 2**20:.0f} MiB"
    assert lag < LAG_BOUND_S, f"event loop stalled {lag:.3f} s"


def test_concurrent_bombs_keep_the_loop_responsive(server):
    outcome, lag, grown = asyncio.run(watched(*(f"{server}/bomb/{c}" for c in CODINGS)))
    assert all(isinstance(o, MediaTooLarge) for o in outcome)
    assert lag < 2 * LAG_BOUND_S and grown < len(CODINGS) * RSS_BOUND  # 5 at once, 2 cores


@pytest.mark.parametrize("coding", CODINGS)
def test_small_encoded_media_is_decoded(server, coding):
    media = asyncio.run(load_source(f"{server}/small/{coding}", kind="image", policy=POLICY))
    assert media.data == PNG


@pytest.mark.parametrize("coding", ["zstd", "compress", "gzip, br", "snappy"])
def test_encodings_that_cannot_be_bounded_are_refused(server, coding):
    with pytest.raises(MediaFetchError, match="Content-Encoding") as info:
        asyncio.run(load_source(f"{server}/other/{coding}", kind="image", policy=POLICY))
    assert info.value.status_code == 400


def test_identity_and_empty_coding_pass_through():
    for header in (None, "", "identity", " Identity "):
        decoder = decoder_for(header, step=4)
        assert list(decoder.feed(b"abcdefghij")) == [b"abcd", b"efgh", b"ij"]
        decoder.finish()


@pytest.mark.parametrize("coding", ["gzip", "deflate", "deflate-raw", "br"])
def test_pieces_are_bounded_and_lossless_in_any_chunking(coding):
    size, step = 300_000, 4096
    body = compression_bomb(size, coding)
    decoder = decoder_for(coding.replace("-raw", ""), step=step)
    pieces = [p for i in range(0, len(body), 5) for p in decoder.feed(body[i : i + 5])]
    decoder.finish()
    assert b"".join(pieces) == bytes(size)
    assert max(map(len, pieces)) <= 64 * 1024  # brotli rounds its limit up to its blocks


@pytest.mark.parametrize("coding", ["gzip", "deflate", "br"])
def test_truncated_or_corrupt_bodies_are_fetch_errors(coding):
    body = compression_bomb(100_000, coding)
    decoder = decoder_for(coding)
    list(decoder.feed(body[: len(body) // 2]))
    with pytest.raises(MediaFetchError, match="cut short"):
        decoder.finish()
    with pytest.raises(MediaFetchError, match="corrupt"):
        list(decoder_for(coding).feed(b"\x1f\x8b\x08\x00" + b"\xff" * 64))
