"""Compressed response bombs through the real chat route, while another client polls /health.

A uvicorn server on the tiny qwen2_vl engine gets image URLs whose responses are 1 GiB of
zeros compressed with each Content-Encoding (and codings it cannot bound). The URLs name a
public address that the app's HTTP client maps onto a loopback origin, so the SSRF guard
stays on. Each chat must answer in the OpenAI error shape within ``TIME_BOUND_S``, memory
must not grow by more than a few caps, and /health must keep answering fast meanwhile.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import psutil
import pytest

from tests.api.test_hostile_media import PUBLIC_IP, PublicAlias, chat_body
from tests.live_server import serving
from vllm_mlx.config import Settings
from vllm_mlx.media.bombs import compression_bomb

GIB = 1 << 30
BOMBS = {coding: compression_bomb(GIB, coding) for coding in ("gzip", "deflate", "br")}
TIME_BOUND_S = 5.0
HEALTH_BOUND_S = 1.0
RSS_BOUND = 300 * 1024 * 1024  # 20 MiB caps, a few at once; one inflated bomb is 1 GiB


class Origin(BaseHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass

    def handle(self) -> None:
        with contextlib.suppress(OSError):  # the app hangs up at its cap
            super().handle()

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        coding = self.path.rsplit("/", 1)[-1]
        body = BOMBS.get(coding, b"\x00" * 64)
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Content-Encoding", coding)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture(scope="module")
def base_url(engine_for, tmp_path_factory) -> Iterator[str]:
    from vllm_mlx.api.app import create_app

    origin = ThreadingHTTPServer(("127.0.0.1", 0), Origin)
    origin.daemon_threads = True
    threading.Thread(target=origin.serve_forever, daemon=True).start()
    settings = Settings(model="tiny:qwen2_vl", storage_path=tmp_path_factory.mktemp("bombs"))
    app = create_app(settings, engine_for("qwen2_vl"))
    with serving(app) as port:
        app.state.serving.http = httpx.AsyncClient(transport=PublicAlias(origin.server_port))
        yield f"http://127.0.0.1:{port}"
    origin.shutdown()
    origin.server_close()


def ask(client: httpx.Client, coding: str) -> tuple[httpx.Response, float]:
    start = time.monotonic()
    body = chat_body("image", f"http://{PUBLIC_IP}/bomb/{coding}")
    response = client.post("/v1/chat/completions", json=body)
    return response, time.monotonic() - start


def poll_health(client: httpx.Client, stop: threading.Event) -> list[float]:
    latencies: list[float] = []
    for _ in range(2000):  # bounded; ends when the attack does
        if stop.is_set():
            break
        start = time.monotonic()
        assert client.get("/health").status_code == 200
        latencies.append(time.monotonic() - start)
        time.sleep(0.02)
    return latencies


def peak_rss(stop: threading.Event) -> int:
    process, peak = psutil.Process(), 0
    while not stop.wait(0.01):
        peak = max(peak, process.memory_info().rss)
    return peak


CASES = [("gzip", 413), ("deflate", 413), ("br", 413), ("zstd", 400), ("gzip, br", 400)]


def test_bombs_get_4xx_in_bounded_time_memory_and_health_latency(base_url):
    with httpx.Client(base_url=base_url, timeout=60) as client, ThreadPoolExecutor(8) as pool:
        ask(client, "zstd")  # warm up the route
        base = psutil.Process().memory_info().rss
        stop = threading.Event()
        health = pool.submit(poll_health, client, stop)
        memory = pool.submit(peak_rss, stop)
        answers = list(pool.map(lambda case: (case, *ask(client, case[0])), CASES))
        stop.set()
        latencies, peak = health.result(), memory.result()
    problems = []
    for (coding, status), response, elapsed in answers:
        error = response.json().get("error", {})
        if response.status_code != status or elapsed > TIME_BOUND_S or not error.get("message"):
            problems.append(f"{coding}: {response.status_code} in {elapsed:.2f} s: "
                            f"{response.text[:200]}")
    assert not problems, "\n".join(problems)
    assert latencies and max(latencies) < HEALTH_BOUND_S, max(latencies, default=None)
    assert peak - base < RSS_BOUND, f"RSS grew {(peak - base) / 2**20:.0f} MiB"
