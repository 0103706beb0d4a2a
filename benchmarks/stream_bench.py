"""Live video over WebSocket: one fast client, then eight concurrent ones, against the
model's own latency measured in this process.

    python benchmarks/stream_bench.py [--model tiny:qwen2_vl] [--seconds 60]
                                      [--multi-seconds 30] [--clients 8]

1. Baseline: the model in-process (an :class:`~vllm_mlx.engine.Engine`, no server),
   one window after another: 5 frames of 640x480 JPEG built exactly as the server
   builds them, the seed's prompt and sampling (48 tokens, temperature 0.7, top_p 0.95;
   ``ignore_eos`` so every window decodes 48 tokens on both sides, unless --allow-eos).
   Gives the median latency per window and the one-at-a-time reply rate.
2. ``vllm-mlx serve`` in a subprocess; one client sends 640x480 JPEG at 30 fps for
   --seconds. Reported: frames sent vs accepted (the server's ``received`` count), the
   longest ``send`` and the sender's worst lateness (a stalled sender shows here), server
   RSS growth after warm-up, and the median reply latency (client clock: from sending
   the window's last frame to receiving its reply).
3. --clients clients at 10 fps each, concurrently, for --multi-seconds: every client's
   reply count and the aggregate replies per second.

Targets: every frame accepted; RSS growth < 50 MB; median latency <= 1.2x the in-process
latency; every client gets replies; aggregate replies/s >= 3x the one-at-a-time rate.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import json
import os
import shlex
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Any

SIZE = (640, 480)
DISTINCT_FRAMES = 60


def encoded_frames() -> list[bytes]:
    from vllm_mlx.stream.sources import TestPatternSource

    source = TestPatternSource(SIZE)
    out = []
    for _ in range(DISTINCT_FRAMES):
        frame = source.read()
        assert frame is not None
        buffer = io.BytesIO()
        frame.to_image().save(buffer, format="JPEG", quality=70)
        out.append(buffer.getvalue())
    return out


def in_process(model: str, jpegs: list[bytes], windows: int, ignore_eos: bool
               ) -> list[float]:
    """Latency of each window, run one at a time on an in-process engine."""
    from vllm_mlx.blas import activate_fast_blas

    activate_fast_blas()
    from vllm_mlx.engine import Engine
    from vllm_mlx.media import MediaPolicy
    from vllm_mlx.stream.analysis import ModelTraits, build_request, decode_frames
    from vllm_mlx.stream.config import StreamConfig
    from vllm_mlx.stream.protocol import Frame

    engine = Engine.start(model)
    traits = ModelTraits(engine.model.capabilities.native_video, engine.model.video_min_frames)
    config = StreamConfig(ignore_eos=ignore_eos)
    latencies = []
    try:
        for w in range(windows + 2):  # two warm-up windows
            frames = [Frame(jpegs[(w * 5 + i) % len(jpegs)], i / 30, 0.0, *SIZE)
                      for i in range(5)]
            request = build_request(decode_frames(frames, MediaPolicy()), config, traits)
            started = time.perf_counter()
            engine.complete_sync(request)
            if w >= 2:
                latencies.append(time.perf_counter() - started)
    finally:
        engine.shutdown()
    return latencies


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rss_mb(pid: int) -> float:
    out = subprocess.run(["ps", "-o", "rss=", "-p", str(pid)], capture_output=True, text=True)
    return int(out.stdout.strip() or 0) / 1024


def start_server(model: str, *extra: str) -> tuple[subprocess.Popen, int]:
    import httpx

    port = free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    server = subprocess.Popen([sys.executable, "-m", "vllm_mlx.cli", "serve", model,
                               "--port", str(port), "--log-level", "warning", *extra], env=env)
    for _ in range(1200):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return server, port
        except httpx.HTTPError:
            time.sleep(0.25)
    server.kill()
    raise SystemExit("the server did not start")


@dataclass
class ClientRun:
    sent: int = 0
    max_send_s: float = 0.0
    max_late_s: float = 0.0
    replies: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    sending: tuple[float, float] = (0.0, 0.0)  # wall-clock start and end of sending

    def replies_while_sending(self) -> int:
        return sum(1 for at, _ in self.replies if at <= self.sending[1])

    def latencies(self, skip: int = 1) -> list[float]:
        return [at - r["timestamps"][-1] for at, r in self.replies[skip:]]


async def _receive(ws: Any, run: ClientRun) -> None:
    async for raw in ws:
        message = json.loads(raw)
        if "vlm_reply" in message:
            run.replies.append((time.time(), message))
        elif "error" in message:
            run.errors.append(message["error"])


async def _send(ws: Any, run: ClientRun, frames: list[str], fps: float, seconds: float) -> None:
    start = time.monotonic()
    while (due := start + run.sent / fps) < start + seconds:
        now = time.monotonic()
        if due > now:
            await asyncio.sleep(due - now)
        run.max_late_s = max(run.max_late_s, time.monotonic() - due)
        message = json.dumps({"timestamp": time.time(), "frame": frames[run.sent % len(frames)]})
        sent_at = time.monotonic()
        await ws.send(message)
        run.max_send_s = max(run.max_send_s, time.monotonic() - sent_at)
        run.sent += 1


async def client(url: str, frames: list[str], fps: float, seconds: float) -> ClientRun:
    """Stream for ``seconds``, then wait for the reply covering the last frame."""
    import websockets

    run = ClientRun()
    async with websockets.connect(url, max_size=None) as ws:
        receiver = asyncio.create_task(_receive(ws, run))
        started = time.time()
        await _send(ws, run, frames, fps, seconds)
        run.sending = (started, time.time())
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not (
                run.replies and run.replies[-1][1]["received"] >= run.sent):
            await asyncio.sleep(0.05)
        receiver.cancel()
    return run


async def single(url: str, frames: list[str], seconds: float, pid: int) -> tuple[ClientRun, float]:
    samples: list[float] = []

    async def sample() -> None:
        while True:
            samples.append(rss_mb(pid))
            await asyncio.sleep(1.0)

    warm = await client(url, frames, 30, 3)  # warm-up connection
    assert warm.replies, "no reply during warm-up"
    baseline_rss = rss_mb(pid)
    sampler = asyncio.create_task(sample())
    run = await client(url, frames, 30, seconds)
    sampler.cancel()
    return run, max(samples + [rss_mb(pid)]) - baseline_rss


def report(args: argparse.Namespace, latencies: list[float], run: ClientRun, growth: float,
           multi: list[ClientRun]) -> None:
    base = statistics.median(latencies)
    serial_rate = len(latencies) / sum(latencies)
    served = statistics.median(run.latencies())
    accepted = run.replies[-1][1]["received"] if run.replies else 0
    window = max(r.sending[1] for r in multi) - min(r.sending[0] for r in multi)
    rate = sum(r.replies_while_sending() for r in multi) / window
    print(f"model {args.model}; 640x480 JPEG q70, 5-frame windows, 48 tokens; "
          f"server flags: {args.server_args or '(defaults)'}")
    print(f"in-process: median {base * 1000:.0f} ms/window, one at a time "
          f"{serial_rate:.2f} replies/s ({len(latencies)} windows)")
    print(f"1 client @30 fps for {args.seconds:.0f}s: sent {run.sent}, accepted {accepted}, "
          f"errors {len(run.errors)}, longest send {run.max_send_s * 1000:.1f} ms, "
          f"worst sender lateness {run.max_late_s * 1000:.1f} ms")
    engine_s = statistics.median(r["generation_s"] for _, r in run.replies[1:])
    print(f"  replies {len(run.replies)}, median latency {served * 1000:.0f} ms "
          f"= {served / base:.2f}x in-process (target <= 1.2x); "
          f"server RSS growth {growth:.1f} MB (target < 50)")
    print(f"  (the server's own engine time per window: median {engine_s * 1000:.0f} ms; "
          f"latency / engine time = {served / engine_s:.2f}, load-independent overhead)")
    counts = [len(r.replies) for r in multi]
    print(f"{len(multi)} clients @10 fps for {args.multi_seconds:.0f}s: replies per client "
          f"{counts}; aggregate {rate:.2f} replies/s = {rate / serial_rate:.2f}x one at a time "
          f"(target >= 3x)")
    ok = (accepted == run.sent and not run.errors and growth < 50 and served <= 1.2 * base
          and min(counts) > 0 and rate >= 3 * serial_rate)
    print("targets:", "all met" if ok else "NOT all met")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny:qwen2_vl")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--multi-seconds", type=float, default=30.0)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--windows", type=int, default=20, help="in-process baseline windows")
    parser.add_argument("--allow-eos", action="store_true")
    parser.add_argument("--server-args", default="", help="extra `vllm-mlx serve` flags, "
                        "e.g. '--prefix-cache-mb 0'")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    jpegs = encoded_frames()
    latencies = in_process(args.model, jpegs, args.windows, not args.allow_eos)
    frames = [base64.b64encode(j).decode() for j in jpegs]
    server, port = start_server(args.model, *shlex.split(args.server_args))
    url = f"ws://127.0.0.1:{port}/" + ("" if args.allow_eos else "?ignore_eos=true")
    try:
        run, growth = asyncio.run(single(url, frames, args.seconds, server.pid))

        async def many() -> list[ClientRun]:
            return list(await asyncio.gather(*(client(url, frames, 10, args.multi_seconds)
                                               for _ in range(args.clients))))

        multi = asyncio.run(many())
    finally:
        server.terminate()
        server.wait(timeout=30)
    report(args, latencies, run, growth, multi)


if __name__ == "__main__":
    main()
