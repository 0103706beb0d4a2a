"""Soak: many concurrent clients mixing every kind of chat request for minutes, on loopback.

    python benchmarks/soak.py [--model tiny:qwen2_vl:small] [--duration 600] [--clients 32]
        [--request-timeout 300] [--write-results] [--json OUT.json]
    python benchmarks/soak.py --url http://127.0.0.1:8000 [--pid PID]   # a running server

Load: --clients async clients (httpx, one shared pool, no keep-alive) each loop until
--duration has passed, picking a kind by weight (:data:`WEIGHTS`): ``text`` (non-streaming),
``text_stream``, ``image`` (a generated JPEG ``data:`` URL, streamed), ``video`` (a generated
2 s mp4 ``data:`` URL, ``video_fps``/``video_max_frames``, streamed), ``cancel`` (a stream
closed by the client after two content chunks) and ``bad`` (malformed requests that must get
a 4xx). Prompts carry a random nonce; images and videos come from small pools, so the
prefix cache sees both new and repeated media.

Every request runs under a total client-side timeout (--request-timeout): one that exceeds
it counts as **hung**. A request is **ok** when it got what it should (200 with content,
a 4xx for ``bad``, two chunks then a clean close for ``cancel``); otherwise it is a **5xx**
(HTTP status >= 500, or an in-stream error of type ``server_error``) or **failed** (anything
else, e.g. a transport error, with its message counted).

Memory: every --sample-every seconds the server's RSS (psutil on its pid; the server this
script starts, or --pid) and ``/metrics``' MLX active/cache memory and prefix-cache bytes are
sampled. Samples after the warm-up (the first --warmup fraction of the run) get a least-squares
slope in MB/min: a leak shows as a steady positive slope. After the clients stop, the script
waits (bounded) until ``/metrics`` shows no running, prefilling or waiting request: a request
the server never released fails that check.

Bounded: --duration <= 3600 s, --clients <= 256; clients start no request after the deadline
and each request ends by its timeout. Only 127.0.0.1 is contacted when the script starts the
server (``peers.running``, which stops it on exit).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import io
import json
import random
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import bench_report
import httpx
import peers
from bench_client import new_client, one_request
from soak_report import Outcome, Run, Sample, kinds_table, summary_lines

MAX_DURATION_S = 3600.0
MAX_CLIENTS = 256
WEIGHTS = {"text": 3, "text_stream": 3, "image": 2, "video": 1, "cancel": 1, "bad": 1}
CANCEL_AFTER_CHUNKS = 2
IDLE_TIMEOUT_S = 60.0
BAD_BODIES: list[tuple[str, bytes]] = [
    ("invalid JSON", b"{not json"),
    ("unknown model", json.dumps({"model": "no-such-model", "messages": [
        {"role": "user", "content": "hi"}]}).encode()),
    ("broken base64 image", json.dumps({"messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/4AAQ"}}]}]}
        ).encode()),
    ("max_tokens over the limit", json.dumps({"max_tokens": 10**9, "messages": [
        {"role": "user", "content": "hi"}]}).encode()),
    ("messages not a list", json.dumps({"messages": "nope"}).encode()),
]



@dataclass
class Media:
    images: list[dict[str, Any]] = field(default_factory=list)
    videos: list[dict[str, Any]] = field(default_factory=list)


# ----------------------------------------------------------------------------- requests


def _jpeg(seed: int, size: tuple[int, int]) -> bytes:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=80)
    return buffer.getvalue()


def make_media(images: int = 12, videos: int = 4) -> Media:
    from vllm_mlx.media.testing import write_test_video

    def part(key: str, mime: str, data: bytes) -> dict[str, Any]:
        url = f"data:{mime};base64,{base64.b64encode(data).decode()}"
        return {"type": key, key: {"url": url}}

    sizes = [(224, 224), (320, 240), (160, 120), (448, 336)]
    media = Media()
    for i in range(images):
        media.images.append(part("image_url", "image/jpeg", _jpeg(i, sizes[i % len(sizes)])))
    for i in range(videos):
        clip = write_test_video(None, seconds=2 + 0.25 * i, fps=8, size=(96, 64))
        assert isinstance(clip, bytes)
        media.videos.append(part("video_url", "video/mp4", clip))
    return media


def chat_body(kind: str, rng: random.Random, media: Media) -> dict[str, Any]:
    nonce = rng.randrange(10**9)
    text = {"type": "text", "text": f"[{nonce}] Describe what you see, briefly."}
    body: dict[str, Any] = {"model": "default", "temperature": 0.7, "seed": nonce,
                            "max_tokens": rng.randint(8, 32), "stream": kind != "text"}
    if kind == "image":
        content: Any = [rng.choice(media.images), text]
    elif kind == "video":
        content = [rng.choice(media.videos), text]
        body.update(video_fps=2.0, video_max_frames=4)
    else:
        content = f"[{nonce}] Tell me a short story about a lighthouse."
    body["messages"] = [{"role": "user", "content": content}]
    if body["stream"]:
        body["stream_options"] = {"include_usage": True}
    return body


async def run_plain(client: httpx.AsyncClient, url: str, body: dict[str, Any]) -> Outcome:
    started = time.perf_counter()
    response = await client.post(url, json=body)
    outcome = Outcome("text", "ok", time.perf_counter() - started, status=response.status_code)
    if response.status_code != 200 or not response.json().get("choices"):
        outcome.verdict = "5xx" if response.status_code >= 500 else "failed"
        outcome.error = f"HTTP {response.status_code}: {response.text[:200]}"
    return outcome


async def run_stream(client: httpx.AsyncClient, url: str, kind: str,
                     body: dict[str, Any]) -> Outcome:
    result = await one_request(client, url, body)
    outcome = Outcome(kind, "ok", (result.done or result.sent) - result.sent, result.ttft,
                      result.status)
    server_error = "server_error" in result.error
    finished = result.first is not None or result.from_usage  # the usage chunk ends a stream
    if result.status >= 500 or server_error:
        outcome.verdict, outcome.error = "5xx", result.describe_error()
    elif result.status != 200 or result.error or not finished:
        outcome.verdict, outcome.error = "failed", result.describe_error()
    return outcome


async def run_cancel(client: httpx.AsyncClient, url: str, body: dict[str, Any]) -> Outcome:
    """Read CANCEL_AFTER_CHUNKS content chunks, then hang up (the server must free it)."""
    started, first, chunks = time.perf_counter(), None, 0
    async with client.stream("POST", url, json=body) as response:
        outcome = Outcome("cancel", "ok", 0.0, status=response.status_code)
        if response.status_code != 200:
            outcome.verdict = "5xx" if response.status_code >= 500 else "failed"
            outcome.error = f"HTTP {response.status_code}"
        else:
            async for line in response.aiter_lines():
                if line.startswith("data:") and '"content":"' in line \
                        and '"content":""' not in line:
                    first = first or time.perf_counter()
                    chunks += 1
                    if chunks >= CANCEL_AFTER_CHUNKS:
                        outcome.hung_up = True
                        break
                if "[DONE]" in line:
                    break  # finished before we hung up: still a clean stream
    outcome.latency_s = time.perf_counter() - started
    outcome.ttft_s = None if first is None else first - started
    return outcome


async def run_bad(client: httpx.AsyncClient, url: str, rng: random.Random) -> Outcome:
    label, payload = rng.choice(BAD_BODIES)
    started = time.perf_counter()
    response = await client.post(url, content=payload,
                                 headers={"content-type": "application/json"})
    outcome = Outcome("bad", "ok", time.perf_counter() - started, status=response.status_code)
    shaped = "error" in response.json() if response.content else False
    if response.status_code >= 500:
        outcome.verdict, outcome.error = "5xx", f"{label}: HTTP {response.status_code}"
    elif not (400 <= response.status_code < 500 and shaped):
        outcome.verdict, outcome.error = "failed", f"{label}: HTTP {response.status_code}"
    return outcome


async def one(client: httpx.AsyncClient, url: str, kind: str, rng: random.Random,
              media: Media, timeout_s: float) -> Outcome:
    started = time.perf_counter()
    try:
        if kind == "bad":
            job = run_bad(client, url, rng)
        elif kind == "cancel":
            job = run_cancel(client, url, chat_body("text_stream", rng, media))
        elif kind == "text":
            job = run_plain(client, url, chat_body(kind, rng, media))
        else:
            job = run_stream(client, url, kind, chat_body(kind, rng, media))
        outcome = await asyncio.wait_for(job, timeout_s)
    except asyncio.TimeoutError:
        return Outcome(kind, "hung", time.perf_counter() - started,
                       error=f"no complete answer within {timeout_s:.0f} s")
    except (httpx.HTTPError, ValueError) as exc:
        return Outcome(kind, "failed", time.perf_counter() - started,
                       error=f"{type(exc).__name__}: {exc}"[:200])
    outcome.kind = kind
    return outcome


async def client_loop(seed: int, client: httpx.AsyncClient, url: str, media: Media,
                      deadline: float, timeout_s: float, out: list[Outcome]) -> None:
    rng = random.Random(seed)
    kinds, weights = list(WEIGHTS), list(WEIGHTS.values())
    await asyncio.sleep(rng.random())  # stagger the start
    while time.monotonic() < deadline:
        out.append(await one(client, url, rng.choices(kinds, weights)[0], rng, media,
                             timeout_s))


# ----------------------------------------------------------------------------- memory


def parse_metrics(text: str) -> dict[str, float]:
    values: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#") and "{" not in line:
            name, _, value = line.partition(" ")
            try:
                values[name] = float(value)
            except ValueError:
                continue
    return values


async def take_sample(client: httpx.AsyncClient, base: str, pid: int | None,
                      t: float) -> Sample:
    sample = Sample(t)
    if pid is not None:
        import psutil

        with contextlib.suppress(psutil.Error):  # the server may be gone
            sample.rss = float(psutil.Process(pid).memory_info().rss)
    try:
        metrics = parse_metrics((await client.get(f"{base}/metrics", timeout=30)).text)
    except httpx.HTTPError:
        return sample
    sample.mlx_active = metrics.get("vllm_mlx_mlx_active_memory_bytes")
    sample.mlx_cache = metrics.get("vllm_mlx_mlx_cache_memory_bytes")
    sample.prefix_cache = metrics.get("vllm_mlx_prefix_cache_bytes")
    return sample


async def sample_memory(client: httpx.AsyncClient, base: str, pid: int | None, every_s: float,
                        start: float, stop: asyncio.Event, out: list[Sample]) -> None:
    while not stop.is_set():
        out.append(await take_sample(client, base, pid, time.monotonic() - start))
        try:
            await asyncio.wait_for(stop.wait(), every_s)
        except asyncio.TimeoutError:
            continue



async def wait_idle(client: httpx.AsyncClient, base: str) -> dict[str, float]:
    """Poll /metrics until nothing runs, prefills or waits; the last reading either way."""
    deadline = time.monotonic() + IDLE_TIMEOUT_S
    metrics: dict[str, float] = {}
    while time.monotonic() < deadline:
        metrics = parse_metrics((await client.get(f"{base}/metrics", timeout=30)).text)
        busy = sum(metrics.get(f"vllm_mlx_{k}", 0) for k in ("batch_size", "prefilling",
                                                               "waiting"))
        if busy == 0:
            metrics["idle_after_s"] = IDLE_TIMEOUT_S - (deadline - time.monotonic())
            return metrics
        await asyncio.sleep(0.5)
    metrics["idle_after_s"] = -1.0
    return metrics


# ----------------------------------------------------------------------------- driver



async def soak(base: str, pid: int | None, args: argparse.Namespace) -> Run:
    media = make_media()
    url = f"{base}/v1/chat/completions"
    outcomes: list[Outcome] = []
    samples: list[Sample] = []
    stop = asyncio.Event()
    load_before = bench_report.machine_line().rsplit("load average ", 1)[-1]
    async with new_client(args.request_timeout, args.clients * 2) as client:
        start = time.monotonic()
        sampler = asyncio.create_task(sample_memory(client, base, pid, args.sample_every,
                                                    start, stop, samples))
        clients = [client_loop(args.seed + i, client, url, media, start + args.duration,
                               args.request_timeout, outcomes) for i in range(args.clients)]
        progress = asyncio.create_task(report_progress(outcomes, start, args.duration))
        await asyncio.gather(*clients)
        wall = time.monotonic() - start
        progress.cancel()
        stop.set()
        await sampler
        idle = await wait_idle(client, base)
        samples.append(await take_sample(client, base, pid, time.monotonic() - start))
    load_after = bench_report.machine_line().rsplit("load average ", 1)[-1]
    return Run(outcomes, samples, idle, wall, load_before, load_after)


async def report_progress(outcomes: list[Outcome], start: float, duration: float) -> None:
    while True:
        await asyncio.sleep(30)
        verdicts = Counter(o.verdict for o in outcomes)
        print(f"  {time.monotonic() - start:6.0f}/{duration:.0f} s: {len(outcomes)} requests, "
              f"{dict(verdicts)}", flush=True)


def report(args: argparse.Namespace, run: Run, server_note: str) -> str:
    warm_s = args.warmup * args.duration
    note = args.note or "measured under load (shared machine)"
    parts = [bench_report.header(f"Soak: {args.model}, {args.clients} clients, "
                                 f"{args.duration:.0f} s", note),
             f"- Server: {server_note}",
             f"- Load average (1, 5, 15 min) before: {run.load_before}; after: "
             f"{run.load_after}",
             f"- Mix (weights): {', '.join(f'{k} {v}' for k, v in WEIGHTS.items())}; "
             f"request timeout {args.request_timeout:.0f} s", "",
             kinds_table(run.outcomes, list(WEIGHTS))]
    parts += [f"- {line}" for line in summary_lines(run, warm_s)]
    return "\n".join(parts) + "\n"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny:qwen2_vl:small")
    parser.add_argument("--url", default=None, help="load this running server instead")
    parser.add_argument("--pid", type=int, default=None, help="--url server's pid (RSS)")
    parser.add_argument("--duration", type=float, default=600.0)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--request-timeout", type=float, default=300.0)
    parser.add_argument("--sample-every", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=0.2,
                        help="fraction of the run left out of the memory slopes")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--log-dir", default=str(peers.VENV_ROOT / "logs"))
    parser.add_argument("--note", default="")
    parser.add_argument("--json", default=None, help="also write raw outcomes and samples")
    parser.add_argument("--write-results", action="store_true",
                        help=f"update this run's section in {bench_report.RESULTS_MD}")
    args = parser.parse_args(argv)
    if not 0 < args.duration <= MAX_DURATION_S or not 0 < args.clients <= MAX_CLIENTS:
        parser.error(f"--duration must be in (0, {MAX_DURATION_S:.0f}] and --clients in "
                     f"(0, {MAX_CLIENTS}]")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.url:
        run = asyncio.run(soak(args.url.rstrip("/"), args.pid, args))
        note = f"URL {args.url}" + (f", pid {args.pid}" if args.pid else " (no RSS: no --pid)")
    else:
        model_dir = peers.resolve_model(args.model)
        with peers.running("ours", model_dir, log_dir=Path(args.log_dir)) as server:
            print(f"server {server.base_url} pid {server.pid}; log {server.log_path}",
                  flush=True)
            run = asyncio.run(soak(server.base_url, server.pid, args))
            note = f"`vllm-mlx serve {model_dir}` ({'; '.join(server.notes)})"
    text = report(args, run, note)
    print("\n" + text)
    if args.json:
        Path(args.json).write_text(json.dumps({
            "outcomes": [asdict(o) for o in run.outcomes],
            "samples": [asdict(s) for s in run.samples], "idle": run.idle}, indent=1))
    if args.write_results:
        bench_report.write_section(f"soak {args.model} {args.clients}", text)
    count = Counter(o.verdict for o in run.outcomes)
    return 0 if count["5xx"] == count["hung"] == 0 and run.idle["idle_after_s"] >= 0 else 1


if __name__ == "__main__":
    sys.exit(main())
