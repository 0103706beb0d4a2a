"""Live video over WebSocket: one fast client, then eight concurrent ones, against the
model's own latency measured in this process.

    python benchmarks/stream_bench.py [--model tiny:qwen2_vl] [--seconds 60]
                                      [--multi-seconds 30] [--clients 8] [--write-results]

1. Baseline: the model in-process (an :class:`~vllm_mlx.engine.Engine`, no server),
   one window after another: 5 frames of 640x480 JPEG, decoded and presized exactly as
   the server does it (:mod:`vllm_mlx.stream.presize`), the seed's prompt and sampling
   (48 tokens, temperature 0.7, top_p 0.95; ``ignore_eos`` so every window decodes 48
   tokens on both sides, unless --allow-eos). Gives the median latency per window and the
   one-at-a-time reply rate. Run twice, before and after the server phases (this machine's
   load moves): both are shown, and the ratios use the two together.
2. ``vllm-mlx serve`` in a subprocess; one client sends 640x480 JPEG at 30 fps for
   --seconds. Reported: frames sent vs accepted (the server's ``received`` count), the
   longest ``send`` and the sender's worst lateness (a stalled sender shows here; the
   client's own event-loop lag is shown with it, as on a busy machine the client process
   itself is what runs late), the server's RSS growth (its peak during the run above its
   level after a warm-up connection; its level at the end and MLX's active and cache
   memory are shown with it), and the median reply latency (client clock: from sending
   the window's last frame to receiving its reply).
3. --clients clients at 10 fps each, concurrently, for --multi-seconds: every client's
   reply count and the aggregate replies per second. A client gets at most one reply per
   ``new_frames`` new frames (the window, 5, unless --new-frames), so the frames
   themselves cap the aggregate at clients * 10 / new_frames windows per second: shown
   next to the ratio, since a fast model reaches that cap before 3x.

Live video never repeats a window, so neither side may be served from the engine's
vision feature cache: every frame is drawn at random (per client seed) from a pool of
distinct JPEGs, so no two windows are alike; the cache hits of each phase are shown (from
the server's ``/metrics``), with the engine's own time split (prefill, decode, mean
decode batch) per reply.

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
import random
import shlex
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # bench_report
sys.path.insert(0, str(HERE.parent))  # this checkout, as the server below runs it

SIZE = (640, 480)
DISTINCT_FRAMES = 60
COUNTERS = ("requests_finished", "prefill_seconds", "decode_seconds", "decode_steps",
            "generated_tokens", "vision_encoder_passes", "vision_cache_hits",
            "prefill_groups", "prefill_group_rows")


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


def load() -> str:
    return ", ".join(f"{x:.1f}" for x in os.getloadavg())


def engine_split(delta: dict[str, float]) -> str:
    """Per reply: the engine's prefill and decode seconds, the mean decode batch; the
    prefill passes several prompts shared, vision passes and feature-cache hits."""
    n = max(delta["requests_finished"], 1)
    steps = max(delta["decode_steps"], 1)
    batch = (delta["generated_tokens"] - delta["requests_finished"]) / steps
    return (f"per reply: prefill {delta['prefill_seconds'] / n * 1000:.0f} ms, decode "
            f"{delta['decode_seconds'] / n * 1000:.0f} ms ({steps / n:.0f} steps of "
            f"{delta['decode_seconds'] / steps * 1000:.1f} ms, mean batch {batch:.1f}); "
            f"shared prefill passes {delta['prefill_groups']:.0f} "
            f"({delta['prefill_group_rows']:.0f} rows), "
            f"vision passes {delta['vision_encoder_passes']:.0f}, "
            f"feature-cache hits {delta['vision_cache_hits']:.0f}, replies {n:.0f}")


@dataclass
class Baseline:
    latencies: list[float]
    split: str
    load: str


def in_process(model: str, jpegs: list[bytes], windows: int, ignore_eos: bool) -> Baseline:
    """Latency of each window, run one at a time on an in-process engine."""
    from vllm_mlx.blas import activate_fast_blas

    activate_fast_blas()
    from vllm_mlx.engine import Engine
    from vllm_mlx.media import MediaPolicy
    from vllm_mlx.stream.analysis import ModelTraits, build_request, decode_frames, frame_sizes
    from vllm_mlx.stream.config import StreamConfig
    from vllm_mlx.stream.presize import FrameSizer
    from vllm_mlx.stream.protocol import Frame

    engine = Engine.start(model)
    traits = ModelTraits(engine.model.capabilities.native_video, engine.model.video_min_frames)
    config = StreamConfig(ignore_eos=ignore_eos)
    sizer = FrameSizer(engine.model.processor)
    pick = random.Random(0)
    latencies: list[float] = []
    try:
        for w in range(windows + 2):  # two warm-up windows
            if w == 2:
                before = engine.stats
            frames = [Frame(pick.choice(jpegs), i / 30, 0.0, *SIZE) for i in range(5)]
            window = decode_frames(frames, MediaPolicy(),
                                   lambda f: frame_sizes(f, config, traits, sizer))
            request = build_request(window, config, traits)
            started = time.perf_counter()
            engine.complete_sync(request)
            if w >= 2:
                latencies.append(time.perf_counter() - started)
        after = engine.stats
    finally:
        engine.shutdown()
    delta = {k: after[k] - before[k] for k in COUNTERS}
    return Baseline(latencies, engine_split(delta), load())


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rss_mb(pid: int) -> float:
    out = subprocess.run(["ps", "-o", "rss=", "-p", str(pid)], capture_output=True, text=True)
    return int(out.stdout.strip() or 0) / 1024


def counters(port: int) -> dict[str, float]:
    import httpx

    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    values = dict(line.rsplit(" ", 1) for line in text.splitlines()
                  if line.startswith("vllm_mlx_") and "{" not in line)
    out = {k: float(values.get(f"vllm_mlx_{k}_total", 0)) for k in COUNTERS}
    for gauge in ("active", "cache"):  # MLX's allocator, in MB
        out[f"mlx_{gauge}"] = float(values.get(f"vllm_mlx_mlx_{gauge}_memory_bytes", 0)) / 2**20
    return out


def start_server(model: str, *extra: str) -> tuple[subprocess.Popen, int]:
    import httpx

    port = free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    server = subprocess.Popen([sys.executable, "-m", "vllm_mlx.cli", "serve", model,
                               "--port", str(port), "--log-level", "warning", *extra],
                              env=env, cwd=HERE.parent)
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
    max_lag_s: float = 0.0  # the client's own event loop running late (its machine share)
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


async def _watch_lag(run: ClientRun) -> None:
    while True:
        due = time.monotonic() + 0.01
        await asyncio.sleep(0.01)
        run.max_lag_s = max(run.max_lag_s, time.monotonic() - due)


async def _send(ws: Any, run: ClientRun, frames: list[str], fps: float, seconds: float,
                seed: int) -> None:
    pick = random.Random(seed)  # a random draw per frame: no two windows alike
    start = time.monotonic()
    while (due := start + run.sent / fps) < start + seconds:
        now = time.monotonic()
        if due > now:
            await asyncio.sleep(due - now)
        run.max_late_s = max(run.max_late_s, time.monotonic() - due)
        message = json.dumps({"timestamp": time.time(), "frame": pick.choice(frames)})
        sent_at = time.monotonic()
        await ws.send(message)
        run.max_send_s = max(run.max_send_s, time.monotonic() - sent_at)
        run.sent += 1


async def client(url: str, frames: list[str], fps: float, seconds: float,
                 seed: int) -> ClientRun:
    """Stream for ``seconds``, then wait for the reply covering the last frame."""
    import websockets

    run = ClientRun()
    async with websockets.connect(url, max_size=None) as ws:
        receiver = asyncio.create_task(_receive(ws, run))
        watcher = asyncio.create_task(_watch_lag(run))
        started = time.time()
        await _send(ws, run, frames, fps, seconds, seed)
        run.sending = (started, time.time())
        watcher.cancel()
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not (
                run.replies and run.replies[-1][1]["received"] >= run.sent):
            await asyncio.sleep(0.05)
        receiver.cancel()
    return run


@dataclass
class Phase:
    runs: list[ClientRun]
    split: str
    load: tuple[str, str]  # before, after
    growth: float = 0.0  # the most RSS above its level after warm-up, in MB
    memory: str = ""  # how memory moved, in words


async def single(url: str, frames: list[str], seconds: float, pid: int, port: int) -> Phase:
    samples: list[float] = []

    async def sample() -> None:
        while True:
            samples.append(rss_mb(pid))
            await asyncio.sleep(1.0)

    warm = await client(url, frames, 30, 3, seed=1000)  # warm-up connection
    assert warm.replies, "no reply during warm-up"
    baseline_rss, before, started = rss_mb(pid), counters(port), load()
    sampler = asyncio.create_task(sample())
    run = await client(url, frames, 30, seconds, seed=1)
    sampler.cancel()
    after, end_rss = counters(port), rss_mb(pid)
    memory = (f"RSS after warm-up {baseline_rss:.0f} MB, at the end {end_rss:.0f} MB "
              f"({end_rss - baseline_rss:+.1f}), peak {max(samples + [end_rss]):.0f} MB; MLX "
              f"active {before['mlx_active']:.0f} -> {after['mlx_active']:.0f} MB, cache "
              f"{before['mlx_cache']:.0f} -> {after['mlx_cache']:.0f} MB")
    return Phase([run], engine_split({k: after[k] - before[k] for k in COUNTERS}),
                 (started, load()), max(samples + [end_rss]) - baseline_rss, memory)


async def many(url: str, frames: list[str], clients: int, seconds: float, port: int) -> Phase:
    before, started = counters(port), load()
    runs = await asyncio.gather(*(client(url, frames, 10, seconds, seed=100 + i)
                                  for i in range(clients)))
    after = counters(port)
    return Phase(list(runs), engine_split({k: after[k] - before[k] for k in COUNTERS}),
                 (started, load()))


def figures(args: argparse.Namespace, baselines: list[Baseline], one: Phase, multi: Phase
            ) -> tuple[list[str], bool]:
    """The report lines and whether every target was met."""
    latencies = [x for b in baselines for x in b.latencies]
    base = statistics.median(latencies)
    serial_rate = len(latencies) / sum(latencies)
    run = one.runs[0]
    served = statistics.median(run.latencies())
    accepted = run.replies[-1][1]["received"] if run.replies else 0
    span = max(r.sending[1] for r in multi.runs) - min(r.sending[0] for r in multi.runs)
    rate = sum(r.replies_while_sending() for r in multi.runs) / span
    engine_s = statistics.median(r["generation_s"] for _, r in run.replies[1:])
    counts = [len(r.replies) for r in multi.runs]
    lines = [f"model {args.model}; 640x480 JPEG q70 drawn at random from {DISTINCT_FRAMES}, "
             f"5-frame windows, 48 tokens; server flags: {args.server_args or '(defaults)'}"]
    for i, b in enumerate(baselines):
        rate_i = len(b.latencies) / sum(b.latencies)
        lines.append(f"in-process run {i + 1} (load after: {b.load}): median "
                     f"{statistics.median(b.latencies) * 1000:.0f} ms/window, one at a time "
                     f"{rate_i:.2f} replies/s ({len(b.latencies)} windows); {b.split}")
    supply = len(multi.runs) * 10 / (args.new_frames or 5)
    lines += [
        f"in-process, runs together: median {base * 1000:.0f} ms/window, one at a time "
        f"{serial_rate:.2f} replies/s",
        f"1 client @30 fps for {args.seconds:.0f}s (load {one.load[0]} -> {one.load[1]}): "
        f"sent {run.sent}, accepted {accepted}, errors {len(run.errors)}, longest send "
        f"{run.max_send_s * 1000:.1f} ms, worst sender lateness {run.max_late_s * 1000:.1f} ms "
        f"(the client's own event loop ran up to {run.max_lag_s * 1000:.1f} ms late)",
        f"  replies {len(run.replies)}, median latency {served * 1000:.0f} ms = "
        f"{served / base:.2f}x in-process (target <= 1.2x); server RSS growth "
        f"{one.growth:.1f} MB (peak above the level after warm-up; target < 50)",
        f"  memory: {one.memory}",
        f"  server's engine time per window: median {engine_s * 1000:.0f} ms (latency / "
        f"engine time = {served / engine_s:.2f}); engine {one.split}",
        f"{len(multi.runs)} clients @10 fps for {args.multi_seconds:.0f}s (load "
        f"{multi.load[0]} -> {multi.load[1]}): replies per client {counts}; errors "
        f"{sum(len(r.errors) for r in multi.runs)}; aggregate {rate:.2f} replies/s = "
        f"{rate / serial_rate:.2f}x one at a time (target >= 3x)",
        f"  frame supply cap (new_frames {args.new_frames or 5}): {supply:.1f} windows/s = "
        f"{supply / serial_rate:.2f}x one at a time; engine {multi.split}",
    ]
    ok = (accepted == run.sent and not run.errors and one.growth < 50 and served <= 1.2 * base
          and min(counts) > 0 and rate >= 3 * serial_rate)
    return lines + ["targets: " + ("all met" if ok else "NOT all met")], ok


def write_results(args: argparse.Namespace, lines: list[str]) -> None:
    import bench_report

    note = "measured under load (shared machine); see the load figures per phase"
    text = bench_report.header(f"Live video stream: {args.model}",
                               f"{note}. {args.note}" if args.note else note)
    text += "\n" + "\n".join(f"- {line.strip()}" for line in lines) + "\n"
    bench_report.write_section(f"stream {args.model}", text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny:qwen2_vl")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--multi-seconds", type=float, default=30.0)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--windows", type=int, default=20, help="in-process baseline windows "
                        "(per run; it runs before and after the server)")
    parser.add_argument("--new-frames", type=int, default=None, help="the clients' "
                        "new_frames setting in the concurrent phase (default: the window)")
    parser.add_argument("--allow-eos", action="store_true")
    parser.add_argument("--server-args", default="", help="extra `vllm-mlx serve` flags, "
                        "e.g. '--prefix-cache-mb 0'")
    parser.add_argument("--write-results", action="store_true",
                        help="replace this model's section of benchmarks/RESULTS.md")
    parser.add_argument("--note", default="", help="a note for the RESULTS.md section")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    jpegs = encoded_frames()
    print(f"load at start: {load()}", flush=True)
    baselines = [in_process(args.model, jpegs, args.windows, not args.allow_eos)]
    frames = [base64.b64encode(j).decode() for j in jpegs]
    server, port = start_server(args.model, *shlex.split(args.server_args))
    url = f"ws://127.0.0.1:{port}/" + ("" if args.allow_eos else "?ignore_eos=true")
    try:
        one = asyncio.run(single(url, frames, args.seconds, server.pid, port))
        multi_url = url + (f"{'&' if '?' in url else '?'}new_frames={args.new_frames}"
                           if args.new_frames else "")
        multi = asyncio.run(many(multi_url, frames, args.clients, args.multi_seconds, port))
    finally:
        server.terminate()
        server.wait(timeout=30)
    baselines.append(in_process(args.model, jpegs, args.windows, not args.allow_eos))
    lines, _ = figures(args, baselines, one, multi)
    print("\n".join(lines))
    if args.write_results:
        write_results(args, lines)


if __name__ == "__main__":
    main()
