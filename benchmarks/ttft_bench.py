"""Time to first token: repeated image/video questions (cold vs warm) and a short request
while a long prompt is prefilling.

    python benchmarks/ttft_bench.py [--vision-model tiny:qwen2_vl] [--text-model tiny:qwen3]
        [--servers ours] [--repeats 3] [--long-tokens 3000] [--only media|prefill]
        [--write-results]
    python benchmarks/ttft_bench.py --vision-model tiny:qwen2_vl:small \
        --text-model tiny:qwen3:small          # the target run

TTFT = client time from sending the request to the first non-empty content chunk of a
streamed chat completion (``max_tokens`` 4; ``ignore_eos`` for ours, ``logit_bias`` -100 on
the EOS ids for servers without it). Requests run one at a time unless stated.

(c) Media, on the vision model, per repeat k (each repeat uses a new image / video, so every
"cold" request really is the first sight of its media):

* cold: ``[user: MEDIA_k, "Describe this ..."]``;
* follow-up: ``[user: MEDIA_k, Q1; assistant: <cold answer>; user: Q2]`` (the chat goes on);
* new question: ``[user: MEDIA_k, Q3]`` (same media first, a different question).

The image is a distinct noise PNG (--image-size, default 448x448), the video a distinct
barcode clip from ``vllm_mlx.media.testing`` (--video-seconds at 8 fps, 320x240, sampled
with ``video_fps``/``video_max_frames`` = 8 frames); both go as ``data:`` URLs.
Target: median warm follow-up TTFT <= 1/5 of the median cold TTFT, for image and for video.

(d) Prefill interference, on the text model: a short prompt's TTFT alone (median of
--repeats), the long prompt's TTFT alone (~--long-tokens tokens of filler text, its
``usage.prompt_tokens`` reported), then per repeat: the long request is sent, the short one
follows after 30% of the long prompt's idle TTFT, and the short one's TTFT is recorded. Each
prompt starts with a fresh nonce so no prefix cache can serve it. A repeat counts only if the
short request was sent before the long one's first token ("overlapped"). Target: median
short TTFT during the long prefill <= 2x its idle TTFT.

Servers come from ``peers.py`` (started one at a time on 127.0.0.1; ``--url`` measures a running
server instead and needs ``--only``). Every loop is bounded (--repeats <= 20, per-request
timeout). A failed request is reported with its status and message, never as a number.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import io
import random
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bench_report
import httpx
import peers
from bench_client import RequestResult, Timings, new_client, one_request

MAX_REPEATS = 20
TTFT_TOKENS = 4
VIDEO_FPS = 8.0
VIDEO_FRAMES = 8
VIDEO_SIZE = (320, 240)
OVERLAP_FRACTION = 0.3
TARGET_WARM = 0.2
TARGET_INTERFERENCE = 2.0
MEDIA_QUESTIONS = {
    "image": ("Describe this image.", "What colors stand out?", "Is there text in the image?"),
    "video": ("Describe this video.", "What happens at the end?", "How many scenes are there?"),
}
WORDS = ("river", "stone", "lantern", "harbor", "quiet", "winter", "signal", "copper", "meadow",
         "rain", "window", "orchard", "engine", "candle", "north", "valley", "paper", "silver",
         "market", "thread", "garden", "island", "letter")


@dataclass
class Endpoint:
    """A running server and how to ask it for a few fixed tokens."""

    name: str
    base_url: str
    model: str
    ignore_eos: bool
    eos: list[int]
    notes: list[str] = field(default_factory=list)

    def body(self, messages: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self.model, "messages": messages, "stream": True,
                                "max_tokens": TTFT_TOKENS, "temperature": 0.0,
                                "stream_options": {"include_usage": True}, **extra}
        if self.ignore_eos:
            body["ignore_eos"] = True
        else:
            body["logit_bias"] = {str(i): -100.0 for i in self.eos}
        return body


Row = Timings  # one row of the report: a label and the TTFTs of its repeats


# ----------------------------------------------------------------------------- media


def noise_png(seed: int, size: tuple[int, int]) -> bytes:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def clip_mp4(seed: int, seconds: float) -> bytes:
    from vllm_mlx.media.testing import write_test_video

    data = write_test_video(None, seconds=seconds + 0.125 * seed, fps=VIDEO_FPS,
                            size=VIDEO_SIZE, realistic=True)
    assert isinstance(data, bytes)
    return data


def media_part(kind: str, data: bytes) -> dict[str, Any]:
    mime = "image/png" if kind == "image" else "video/mp4"
    url = f"data:{mime};base64,{base64.b64encode(data).decode()}"
    key = "image_url" if kind == "image" else "video_url"
    return {"type": key, key: {"url": url}}


def _user(media: dict[str, Any] | None, text: str) -> dict[str, Any]:
    content: list[dict[str, Any]] = [media] if media else []
    return {"role": "user", "content": [*content, {"type": "text", "text": text}]}


async def _ask(client: httpx.AsyncClient, ep: Endpoint, messages: list[dict[str, Any]],
               **extra: Any) -> RequestResult:
    return await one_request(client, f"{ep.base_url}/v1/chat/completions",
                             ep.body(messages, **extra))


def _record(row: Row, result: RequestResult) -> bool:
    if result.ok and result.ttft is not None:
        row.values.append(result.ttft)
        return True
    row.errors.append(result.describe_error())
    return False


async def media_rows(client: httpx.AsyncClient, ep: Endpoint, kind: str, repeats: int,
                     args: argparse.Namespace) -> list[Row]:
    q1, q2, q3 = MEDIA_QUESTIONS[kind]
    rows = [Row(f"{kind}: cold"), Row(f"{kind}: follow-up (same chat)"),
            Row(f"{kind}: same media, new question")]
    extra = ({"video_fps": VIDEO_FPS, "video_max_frames": VIDEO_FRAMES}
             if kind == "video" else {})
    for k in range(repeats):
        data = (noise_png(k, args.image_size) if kind == "image"
                else clip_mp4(k, args.video_seconds))
        part = media_part(kind, data)
        cold = await _ask(client, ep, [_user(part, q1)], **extra)
        if not _record(rows[0], cold):
            continue
        chat = [_user(part, q1), {"role": "assistant", "content": cold.text}, _user(None, q2)]
        _record(rows[1], await _ask(client, ep, chat, **extra))
        _record(rows[2], await _ask(client, ep, [_user(part, q3)], **extra))
        if cold.prompt_tokens:
            rows[0].note = f"{cold.prompt_tokens} prompt tokens"
    return rows


# ----------------------------------------------------------------------------- prefill


def filler(nonce: int, words: int) -> str:
    rng = random.Random(nonce)
    body = " ".join(rng.choice(WORDS) for _ in range(words))
    return f"[{nonce}] Read the notes below and summarise them.\n{body}"


def short_prompt(nonce: int) -> str:
    return f"[{nonce}] What is the capital of France?"


async def _idle_short(client: httpx.AsyncClient, ep: Endpoint, repeats: int,
                      nonces: Callable[[], int]) -> Row:
    row = Row("short request, idle server")
    for _ in range(repeats):
        _record(row, await _ask(client, ep, [_user(None, short_prompt(nonces()))]))
    return row


async def _during_long(client: httpx.AsyncClient, ep: Endpoint, repeats: int, words: int,
                       delay_s: float, nonces: Callable[[], int]) -> Row:
    row = Row("short request, long prompt prefilling")
    overlapped = 0
    for _ in range(repeats):
        long_task = asyncio.ensure_future(
            _ask(client, ep, [_user(None, filler(nonces(), words))]))
        await asyncio.sleep(delay_s)
        short = await _ask(client, ep, [_user(None, short_prompt(nonces()))])
        long = await long_task
        if not long.ok:
            row.errors.append(f"long request: {long.describe_error()}")
            continue
        if long.first is not None and short.sent < long.first:
            overlapped += 1
            _record(row, short)
        elif short.ok:
            row.errors.append("not overlapped: the long prompt had finished prefilling")
    row.note = f"{overlapped}/{repeats} overlapped, short sent {delay_s:.2f}s after long"
    return row


def filler_words(model_dir: Path, long_tokens: int) -> int:
    """How many filler words make a prompt of at least ``long_tokens`` tokens (its tokenizer)."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    words = long_tokens
    for _ in range(8):
        count = len(tokenizer.encode(filler(0, words)).ids)
        if long_tokens <= count <= long_tokens * 1.05:
            break
        words = max(1, round(words * long_tokens * 1.02 / max(count, 1)))
    return words


async def prefill_rows(client: httpx.AsyncClient, ep: Endpoint, repeats: int,
                       words: int) -> list[Row]:
    counter = iter(range(10**6, 10**6 + 10 * MAX_REPEATS + 100))
    nonces: Callable[[], int] = lambda: next(counter)  # noqa: E731
    await _ask(client, ep, [_user(None, short_prompt(nonces()))])  # warm-up
    idle = await _idle_short(client, ep, repeats, nonces)
    long_row = Row("long prompt alone")
    long = await _ask(client, ep, [_user(None, filler(nonces(), words))])
    if not _record(long_row, long):
        return [idle, long_row]
    long_row.note = f"{long.prompt_tokens} prompt tokens"
    delay = OVERLAP_FRACTION * (long.ttft or 0.0)
    during = await _during_long(client, ep, repeats, words, delay, nonces)
    return [idle, long_row, during]


# ----------------------------------------------------------------------------- report


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def table(name: str, rows: list[Row]) -> str:
    lines = [f"**{name}**", "", "| measurement | TTFT median (s) | all (s) | errors | note |",
             "|---|---:|---|---|---|"]
    for row in rows:
        errors = "; ".join(sorted(set(row.errors)))[:300] or "0"
        every = ", ".join(f"{t:.3f}" for t in row.values)
        lines.append(f"| {row.label} | {_fmt(row.median)} | {every} | {errors} | {row.note} |")
    return "\n".join(lines) + "\n"


def _ratio(rows: list[Row], num: str, den: str) -> float | None:
    by = {r.label: r.median for r in rows}
    a, b = by.get(num), by.get(den)
    return a / b if a is not None and b else None


def target_lines(name: str, rows: list[Row]) -> list[str]:
    checks: list[tuple[str, str, float | None, str]] = [
        (f"{k}: follow-up (same chat)", f"{k}: cold", TARGET_WARM, f"{k} warm/cold")
        for k in ("image", "video")]
    checks += [(f"{k}: same media, new question", f"{k}: cold", None, f"{k} new-q/cold")
               for k in ("image", "video")]
    checks.append(("short request, long prompt prefilling", "short request, idle server",
                   TARGET_INTERFERENCE, "short during long prefill / idle"))
    out = []
    for num, den, target, label in checks:
        r = _ratio(rows, num, den)
        if r is None:
            if any(row.label == den for row in rows):
                out.append(f"{name}: {label}: not measured (see errors)")
            continue
        verdict = "" if target is None else (
            f" (target <= {target}): {'PASS' if r <= target else 'FAIL'}")
        out.append(f"{name}: {label} = {r:.3f}{verdict}")
    return out


# ----------------------------------------------------------------------------- driver


async def run_phase(ep: Endpoint, phase: Callable[[httpx.AsyncClient, Endpoint],
                                                  Awaitable[list[Row]]],
                    timeout_s: float) -> list[Row]:
    async with new_client(timeout_s) as client:
        return await phase(client, ep)


def _endpoint(server: peers.Server, model_dir: Path) -> Endpoint:
    return Endpoint(server.name, server.base_url, server.request_model,
                    server.supports_ignore_eos, peers.eos_token_ids(model_dir), server.notes)


def measure_server(name: str, args: argparse.Namespace, notes: list[str]) -> list[Row]:
    rows: list[Row] = []
    plan = []
    if args.only in (None, "media"):
        plan.append((args.vision_model, _media_phase(args)))
    if args.only in (None, "prefill"):
        plan.append((args.text_model, _prefill_phase(args, args.text_model)))
    for model_ref, phase in plan:
        model_dir = peers.resolve_model(model_ref)
        try:
            with peers.running(name, model_dir, log_dir=Path(args.log_dir),
                               blas=args.blas) as server:
                notes.append(f"{name} on {model_ref}: {'; '.join(server.notes)}")
                rows += asyncio.run(run_phase(_endpoint(server, model_dir), phase,
                                              args.request_timeout))
        except peers.PeerUnavailable as exc:
            notes.append(f"{name} on {model_ref}: UNAVAILABLE: {exc.summary()}")
            print(f"{name} on {model_ref}: UNAVAILABLE: {exc}", flush=True)
    return rows


def _media_phase(args: argparse.Namespace
                 ) -> Callable[[httpx.AsyncClient, Endpoint], Awaitable[list[Row]]]:
    async def phase(client: httpx.AsyncClient, ep: Endpoint) -> list[Row]:
        await _ask(client, ep, [_user(None, "Hello.")])  # warm-up, no media
        rows = []
        for kind in ("image", "video"):
            rows += await media_rows(client, ep, kind, args.repeats, args)
            print(table(f"{ep.name} (partial)", rows), flush=True)
        return rows
    return phase


def _prefill_phase(args: argparse.Namespace, model_ref: str
                   ) -> Callable[[httpx.AsyncClient, Endpoint], Awaitable[list[Row]]]:
    words = filler_words(peers.resolve_model(model_ref), args.long_tokens)

    async def phase(client: httpx.AsyncClient, ep: Endpoint) -> list[Row]:
        return await prefill_rows(client, ep, args.repeats, words)
    return phase


def _url_rows(args: argparse.Namespace, notes: list[str]) -> list[Row]:
    model_ref = args.vision_model if args.only == "media" else args.text_model
    model_dir = peers.resolve_model(model_ref)
    ep = Endpoint("server", args.url.rstrip("/"), args.url_model, True,
                  peers.eos_token_ids(model_dir))
    phase = (_media_phase(args) if args.only == "media"
             else _prefill_phase(args, args.text_model))
    notes.append(f"URL {args.url} (model {model_ref} for EOS ids)")
    return asyncio.run(run_phase(ep, phase, args.request_timeout))


def _size(text: str) -> tuple[int, int]:
    w, h = text.lower().split("x")
    return int(w), int(h)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vision-model", default="tiny:qwen2_vl")
    parser.add_argument("--text-model", default="tiny:qwen3")
    parser.add_argument("--servers", default="ours")
    parser.add_argument("--url", default=None)
    parser.add_argument("--url-model", default="default")
    parser.add_argument("--only", choices=("media", "prefill"), default=None)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--long-tokens", type=int, default=3000)
    parser.add_argument("--image-size", type=_size, default=(448, 448))
    parser.add_argument("--video-seconds", type=float, default=2.0)
    parser.add_argument("--request-timeout", type=float, default=900.0)
    parser.add_argument("--blas", choices=peers.BLAS_CHOICES, default="same")
    parser.add_argument("--log-dir", default=str(peers.VENV_ROOT / "logs"))
    parser.add_argument("--note", default="")
    parser.add_argument("--write-results", action="store_true")
    args = parser.parse_args(argv)
    args.repeats = max(1, min(args.repeats, MAX_REPEATS))
    if args.url and not args.only:
        parser.error("--url needs --only media or --only prefill (one model per server)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    notes: list[str] = []
    results: dict[str, list[Row]] = {}
    if args.url:
        results["server"] = _url_rows(args, notes)
    else:
        for name in [n.strip() for n in args.servers.split(",") if n.strip()]:
            results[name] = measure_server(name, args, notes)
    measured = [f"{args.vision_model} (media)"] if args.only != "prefill" else []
    measured += [f"{args.text_model} (prefill)"] if args.only != "media" else []
    title = "TTFT: " + ", ".join(measured)
    parts = [bench_report.header(title, args.note or "measured under load (shared machine)")]
    parts += [f"- {n}" for n in notes] + [""]
    parts += [table(name, rows) for name, rows in results.items() if rows]
    parts += [f"- {line}" for name, rows in results.items() for line in target_lines(name, rows)]
    text = "\n".join(parts) + "\n"
    print("\n" + text)
    if args.write_results:
        bench_report.write_section("ttft " + " ".join(measured), text)
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
