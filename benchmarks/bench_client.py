"""One streamed chat completion, timed on the client: the benchmarks' shared HTTP client code.

Contract: :func:`one_request` POSTs ``body`` (which must ask for ``stream: true``) to ``url``
and never raises for HTTP or stream problems: the returned :class:`RequestResult` carries
the status (0 for a transport error or timeout), a short error text, ``perf_counter``
timestamps (sent, first and last non-empty content chunk, done), the assistant text, and
the token counts (``usage`` when the server sends it, else one per non-empty content chunk,
flagged by ``from_usage``). :func:`new_client` is an ``httpx.AsyncClient`` that ignores proxy
settings (the benchmarks only talk to 127.0.0.1). :func:`start_serving` starts ``vllm-mlx
serve ARGS`` on a free loopback port and returns once ``/health`` answers.
"""

from __future__ import annotations

import json
import os
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import httpx


@dataclass
class RequestResult:
    """One streamed request, with client-side perf_counter timestamps."""

    status: int = 0  # HTTP status; 0 = transport error or timeout
    error: str = ""
    sent: float = 0.0
    first: float | None = None  # first non-empty content chunk
    last: float | None = None  # last non-empty content chunk
    done: float | None = None
    tokens: int = 0
    from_usage: bool = False
    prompt_tokens: int | None = None
    text_parts: list[str] = field(default_factory=list, repr=False)

    @property
    def ok(self) -> bool:
        return self.status == 200 and not self.error and self.first is not None

    @property
    def ttft(self) -> float | None:
        return None if self.first is None else self.first - self.sent

    @property
    def text(self) -> str:
        return "".join(self.text_parts)

    def describe_error(self) -> str:
        if self.status and self.status != 200:
            return f"HTTP {self.status}: {self.error}"
        return self.error or "no content tokens"


@dataclass
class Timings:
    """One reported measurement: a label, seconds per try (e.g. TTFTs), errors, a note."""

    label: str
    values: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    note: str = ""

    @property
    def median(self) -> float | None:
        return statistics.median(self.values) if self.values else None


def _consume(line: str, result: RequestResult) -> bool:
    """Apply one SSE line to ``result``; True at ``[DONE]`` or an error event."""
    if not line.startswith("data:"):
        return False
    payload = line[5:].strip()
    if payload == "[DONE]":
        return True
    chunk = json.loads(payload)
    if "error" in chunk:
        result.error = f"stream error: {str(chunk['error'])[:200]}"
        return True
    now = time.perf_counter()
    for choice in chunk.get("choices") or []:
        content = (choice.get("delta") or {}).get("content")
        if content:
            result.first = result.first or now
            result.last = now
            result.text_parts.append(content)
            if not result.from_usage:
                result.tokens += 1
    usage = chunk.get("usage")
    if usage and usage.get("completion_tokens") is not None:
        result.tokens, result.from_usage = int(usage["completion_tokens"]), True
        result.prompt_tokens = usage.get("prompt_tokens")
    return False


async def one_request(client: httpx.AsyncClient, url: str, body: dict[str, Any]
                      ) -> RequestResult:
    """Stream one completion; see the module contract."""
    result = RequestResult(sent=time.perf_counter())
    try:
        async with client.stream("POST", url, json=body) as response:
            result.status = response.status_code
            if response.status_code != 200:
                result.error = (await response.aread()).decode(errors="replace")[:300]
                return result
            async for line in response.aiter_lines():
                if _consume(line, result):
                    break
    except (httpx.HTTPError, json.JSONDecodeError) as exc:
        result.error = f"{type(exc).__name__}: {exc}"[:300]
    finally:
        result.done = time.perf_counter()
    return result


def new_client(request_timeout_s: float, max_connections: int = 128) -> httpx.AsyncClient:
    timeout = httpx.Timeout(request_timeout_s, connect=10.0)
    limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=0)
    return httpx.AsyncClient(timeout=timeout, limits=limits, trust_env=False)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_serving(args: list[str], *, timeout_s: float = 300) -> tuple[subprocess.Popen, str]:
    """``vllm-mlx serve *args`` (offline) on a free port: (process, base URL) once healthy."""
    port = free_port()
    command = [sys.executable, "-m", "vllm_mlx.cli", "serve", *args, "--port", str(port)]
    process = subprocess.Popen(command, env={**os.environ, "HF_HUB_OFFLINE": "1"},
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited early: {process.stderr.read()[-2000:]}")
        try:
            if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                return process, base
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    process.kill()
    raise RuntimeError("server did not start")
