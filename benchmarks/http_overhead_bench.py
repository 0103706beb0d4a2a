"""What the HTTP layer costs: the engine in-process vs our server over HTTP/SSE (issue 25).

    PYTHONPATH=. python benchmarks/http_overhead_bench.py [--model tiny:qwen3] [--tokens 512]
        [--levels 8,16,32] [--rounds 2] [--quick] [--peer] [--baseline DIR]
        [--write-results]

One run measures, at each level N (N streamed chat completions of --tokens tokens sent at
once, ``ignore_eos``, temperature 0, the same prompt):

* ``in-process``: the engine in this process, ``Engine.generate`` on one asyncio loop (no
  HTTP, no JSON): the ceiling the server is measured against;
* ``ours``: ``vllm-mlx serve`` from this checkout over HTTP/SSE;
* ``baseline`` (``--baseline DIR``): the same server from another checkout (e.g. ``git
  archive HEAD | tar -x -C DIR``), to show before/after in one run;
* ``vllm-mlx-0.6.0`` (``--peer``): the PyPI release, started by ``peers.py`` with the same
  OpenBLAS, if its venv exists (``python benchmarks/peers.py install``); it has no
  ``ignore_eos``, so it gets ``logit_bias`` -100 on the EOS ids.

Throughput is end to end: tokens (from ``usage.completion_tokens``; in-process, from the
last chunk's ``completion_tokens``) over the wall time from the first request sent to the
last stream done. For HTTP targets it also reports the server process's CPU use (cores =
CPU seconds / wall seconds, all threads; and its busiest thread, from
``/proc/PID/task/*/stat``), and this client process's CPU use. The client is lean on
purpose (it JSON-decodes only the events it needs), so it takes little of the CPU the
server competes for. Since tok/s swings with other load on the machine, it also reports
CPU time per token: of the whole serving process (in-process: of this process) and of the
server's event-loop thread alone (``loop µs/token``: the HTTP layer's own cost), and the
engine's decode steps (tokens per step, ms per step, from ``/metrics``). Then the
single-stream latency: TTFT (``max_tokens`` 1) and one
--tokens completion, in-process and over HTTP.

Rounds are interleaved (level by level, round by round, target after target) and each level
keeps its best round. Targets: ours >= 0.8x in-process at 16 streams; ours >= 1.5x
vllm-mlx 0.6.0 at every level. ``--quick``: levels 8,16, 128 tokens, one round.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bench_report
import httpx
import peers
import psutil
from bench_client import free_port

PROMPT = "Write a long story about a lighthouse keeper."
TARGET_VS_IN_PROCESS = 0.8
TARGET_VS_PEER = 1.5
PEER = "vllm-mlx-0.6.0"


@dataclass
class Level:
    """One level (best round) of one target."""

    streams: int
    tokens: int = 0
    ok: int = 0
    tps: float = 0.0
    ttft_p50_s: float = 0.0
    server_cores: float | None = None
    busiest_thread_cores: float | None = None
    loop_cores: float | None = None  # the server's main thread: its event loop
    client_cores: float = 0.0
    steps: tuple[int, float] = (0, 0.0)  # engine decode steps, decode seconds

    @property
    def cpu_us_per_token(self) -> float:
        """CPU time of the serving process per token (in-process: of this process, which
        is then the engine's), robust to other load on the machine, unlike tok/s."""
        cores = self.client_cores if self.server_cores is None else self.server_cores
        return 1e6 * cores / self.tps if self.tps else 0.0

    @property
    def loop_us_per_token(self) -> float | None:
        """CPU time of the server's event-loop thread per token: the HTTP layer's cost."""
        return None if self.loop_cores is None or not self.tps else 1e6 * self.loop_cores / self.tps

    @property
    def tokens_per_step(self) -> float | None:  # None: no counters (a peer)
        return self.tokens / self.steps[0] if self.steps[0] else None

    @property
    def ms_per_step(self) -> float | None:
        return 1000 * self.steps[1] / self.steps[0] if self.steps[0] else None


@dataclass
class HTTPTarget:
    name: str
    base_url: str
    body: dict[str, Any]
    pid: int
    notes: list[str] = field(default_factory=list)


# ----------------------------------------------------------------------------- CPU


def thread_cpu(pid: int) -> dict[int, float]:
    """CPU seconds of each thread of ``pid`` (utime + stime from /proc)."""
    ticks = os.sysconf("SC_CLK_TCK")
    out = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[int(task.name)] = (int(fields[11]) + int(fields[12])) / ticks
    return out


@contextmanager
def cpu_meter(server_pid: int | None) -> Iterator[Callable[[float], dict[str, float]]]:
    """Yields ``usage(wall_s)``: server, busiest server thread and client cores."""
    me = psutil.Process()
    client0 = sum(me.cpu_times()[:2])
    threads0 = thread_cpu(server_pid) if server_pid else {}

    def usage(wall: float) -> dict[str, float]:
        out = {"client": (sum(me.cpu_times()[:2]) - client0) / wall}
        if server_pid:
            threads = thread_cpu(server_pid)
            spent = [t - threads0.get(tid, 0.0) for tid, t in threads.items()]
            out["server"] = sum(spent) / wall
            out["busiest"] = max(spent) / wall
            out["loop"] = (threads.get(server_pid, 0.0) - threads0.get(server_pid, 0.0)) / wall
        return out

    yield usage


# ----------------------------------------------------------------------------- HTTP client


async def stream_once(client: httpx.AsyncClient, url: str, body: dict[str, Any]
                      ) -> tuple[int, float | None, float]:
    """One streamed chat: (completion tokens from usage, TTFT or None, seconds). Only the
    events before the first content and those that carry usage are JSON-decoded."""
    sent, first, tokens = time.perf_counter(), None, 0
    async with client.stream("POST", url, json=body) as response:
        if response.status_code != 200:
            raise RuntimeError(f"HTTP {response.status_code}: {(await response.aread())[:200]!r}")
        buffer = b""
        async for data in response.aiter_bytes():
            buffer += data
            *events, buffer = buffer.split(b"\n\n")
            for event in events:
                payload = event[5:].strip() if event.startswith(b"data:") else b""
                if not payload.startswith(b"{"):
                    continue
                if first is None and b'"content"' in payload:
                    delta = (json.loads(payload).get("choices") or [{}])[0].get("delta") or {}
                    if delta.get("content"):
                        first = time.perf_counter() - sent
                if b'"completion_tokens"' in payload:
                    usage = json.loads(payload).get("usage") or {}
                    tokens = int(usage.get("completion_tokens") or tokens)
    return tokens, first, time.perf_counter() - sent


async def http_level(client: httpx.AsyncClient, target: HTTPTarget, streams: int,
                     body: dict[str, Any] | None = None) -> Level:
    url = f"{target.base_url}/v1/chat/completions"
    counters = await server_counters(client, target)
    with cpu_meter(target.pid) as usage:
        start = time.perf_counter()
        results = await asyncio.gather(
            *(stream_once(client, url, body or target.body) for _ in range(streams)),
            return_exceptions=True)
        wall = time.perf_counter() - start
        cpu = usage(wall)
    good = [r for r in results if not isinstance(r, BaseException)]
    for r in results:
        if isinstance(r, BaseException):
            print(f"    {target.name}: {type(r).__name__}: {r}", flush=True)
    return Level(streams, sum(r[0] for r in good), len(good),
                 sum(r[0] for r in good) / wall,
                 statistics.median(r[1] or r[2] for r in good) if good else 0.0,
                 cpu["server"], cpu["busiest"], cpu["loop"], cpu["client"],
                 _steps(counters, await server_counters(client, target)))


# ----------------------------------------------------------------------------- in-process


def engine_request(tokens: int) -> Any:
    from vllm_mlx.engine import ChatMessage, GenerationRequest, SamplingParams, TextPart

    return GenerationRequest(messages=(ChatMessage("user", (TextPart(PROMPT),)),),
                             sampling=SamplingParams(max_tokens=tokens, ignore_eos=True))


async def engine_once(engine: Any, tokens: int) -> tuple[int, float | None, float]:
    sent, first, count = time.perf_counter(), None, 0
    async for chunk in engine.generate(engine_request(tokens)):
        if first is None and chunk.text:
            first = time.perf_counter() - sent
        count = chunk.completion_tokens
    return count, first, time.perf_counter() - sent


async def engine_level(engine: Any, streams: int, tokens: int) -> Level:
    before = engine.stats
    with cpu_meter(None) as usage:
        start = time.perf_counter()
        results = await asyncio.gather(*(engine_once(engine, tokens) for _ in range(streams)))
        wall = time.perf_counter() - start
        cpu = usage(wall)
    total = sum(r[0] for r in results)
    return Level(streams, total, len(results), total / wall,
                 statistics.median(r[1] or r[2] for r in results), None, None, None,
                 cpu["client"], steps=_steps(before, engine.stats))


def _steps(before: dict[str, float], after: dict[str, float]) -> tuple[int, float]:
    """(decode steps, decode seconds) between two counter snapshots."""
    return (int(after.get("decode_steps", 0) - before.get("decode_steps", 0)),
            after.get("decode_seconds", 0.0) - before.get("decode_seconds", 0.0))


async def server_counters(client: httpx.AsyncClient, target: HTTPTarget) -> dict[str, float]:
    """The engine's decode counters from our server's /metrics (empty for a peer)."""
    if target.name == PEER:
        return {}
    text = (await client.get(f"{target.base_url}/metrics")).text
    out = {}
    for line in text.splitlines():
        for key in ("decode_steps", "decode_seconds"):
            if line.split(" ")[0].endswith(f"{key}_total"):
                out[key] = float(line.split()[-1])
    return out


def start_engine(model_dir: Path) -> Any:
    from vllm_mlx.blas import activate_fast_blas

    activate_fast_blas()
    from vllm_mlx.engine import Engine

    return Engine.start(str(model_dir))


# ----------------------------------------------------------------------------- servers


def request_body(model: str, tokens: int, eos: list[int], ignore_eos: bool) -> dict[str, Any]:
    body: dict[str, Any] = {"model": model, "messages": [{"role": "user", "content": PROMPT}],
                            "max_tokens": tokens, "temperature": 0.0, "stream": True,
                            "stream_options": {"include_usage": True}}
    if ignore_eos:
        body["ignore_eos"] = True
    else:
        body["logit_bias"] = {str(i): -100.0 for i in eos}
    return body


@contextmanager
def our_server(name: str, checkout: Path, model_dir: Path, tokens: int
               ) -> Iterator[HTTPTarget]:
    """``vllm-mlx serve`` from ``checkout`` (its own package first on the path)."""
    port = free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(checkout)}
    process = subprocess.Popen(
        [sys.executable, "-m", "vllm_mlx.cli", "serve", str(model_dir), "--host",
         "127.0.0.1", "--port", str(port), "--log-level", "warning"],
        cwd=checkout, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300
        while True:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not start: {process.stderr.read()[-2000:]}")
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        yield HTTPTarget(name, base, request_body("default", tokens, [], True), process.pid,
                         [f"checkout {checkout}"])
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


def start_targets(stack: ExitStack, args: argparse.Namespace, model_dir: Path,
                  tokens: int) -> tuple[list[HTTPTarget], list[str]]:
    targets = [stack.enter_context(our_server("ours", peers.REPO, model_dir, tokens))]
    notes = []
    if args.baseline:
        targets.append(stack.enter_context(
            our_server("baseline", Path(args.baseline).resolve(), model_dir, tokens)))
    if args.peer:
        if not peers.venv_python(PEER).exists():
            notes.append(f"{PEER}: peer not installed (python benchmarks/peers.py install "
                         "creates .bench-venvs/vllm-mlx-0.6.0)")
        else:
            try:
                server = stack.enter_context(peers.running(
                    PEER, model_dir, log_dir=peers.VENV_ROOT / "logs"))
                body = request_body(server.request_model, tokens,
                                    peers.eos_token_ids(model_dir), False)
                targets.append(HTTPTarget(PEER, server.base_url, body, server.pid,
                                          server.notes))
            except peers.PeerUnavailable as exc:
                notes.append(f"{PEER}: UNAVAILABLE: {exc.summary()}")
    return targets, notes


async def single_stream(run: Callable[[int], Any], tokens: int, rounds: int
                        ) -> dict[str, float]:
    """Best TTFT (``max_tokens`` 1, of 5) and best whole-reply time of one stream."""
    first = [await run(1) for _ in range(5)]
    whole = [await run(tokens) for _ in range(rounds)]
    return {"ttft_s": min(f.ttft_p50_s for f in first),
            "latency_s": min(w.tokens / w.tps for w in whole if w.tps)}


async def measure(engine: Any, targets: list[HTTPTarget], levels: list[int], rounds: int,
                  tokens: int) -> tuple[dict[str, list[Level]], dict[str, dict]]:
    """Level by level, round by round: the engine in-process, then each server."""
    limits = httpx.Limits(max_connections=256, max_keepalive_connections=0)
    names = ["in-process", *(t.name for t in targets)]
    best: dict[str, dict[int, Level]] = {name: {} for name in names}
    async with httpx.AsyncClient(timeout=httpx.Timeout(600, connect=10), limits=limits,
                                 trust_env=False) as client:
        runs: dict[str, Callable[..., Any]] = {
            "in-process": functools.partial(engine_level, engine)}
        runs.update({t.name: functools.partial(_http_run, client, t) for t in targets})
        for run in runs.values():
            await run(2, 8)  # warm-up
        for streams in levels:
            for _ in range(rounds):
                for name, run in runs.items():
                    level = await run(streams, tokens)
                    print(f"  {name:>14} {streams:>2} streams: {level.tps:8.1f} tok/s, "
                          f"{level.cpu_us_per_token:.0f} CPU us/token (loop "
                          f"{_fmt(level.loop_us_per_token, '.0f')})", flush=True)
                    kept = best[name].get(streams)
                    if kept is None or level.tps > kept.tps:
                        best[name][streams] = level
        single = {name: await single_stream(functools.partial(run, 1), tokens, rounds)
                  for name, run in runs.items()}
    return {name: [by_level[s] for s in levels] for name, by_level in best.items()}, single


async def _http_run(client: httpx.AsyncClient, target: HTTPTarget, streams: int,
                    tokens: int) -> Level:
    return await http_level(client, target, streams, {**target.body, "max_tokens": tokens})


# ----------------------------------------------------------------------------- report


def _fmt(value: float | None, spec: str = ".2f") -> str:
    return "-" if value is None else format(value, spec)


def level_table(results: dict[str, list[Level]]) -> str:
    inproc = {s.streams: s for s in results["in-process"]}
    rows = ["| target | streams | tokens | tok/s (e2e) | x in-process | TTFT p50 (s) "
            "| tokens/step | ms/step | CPU µs/token | loop µs/token | server cores "
            "| busiest thread | client cores |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, levels in results.items():
        for s in levels:
            base = inproc[s.streams].tps
            rows.append(f"| {name} | {s.streams} | {s.tokens} | {s.tps:.1f} "
                        f"| {s.tps / base:.2f} | {s.ttft_p50_s:.3f} "
                        f"| {_fmt(s.tokens_per_step, '.1f')} "
                        f"| {_fmt(s.ms_per_step)} | {s.cpu_us_per_token:.0f} "
                        f"| {_fmt(s.loop_us_per_token, '.0f')} "
                        f"| {_fmt(s.server_cores)} "
                        f"| {_fmt(s.busiest_thread_cores)} | {s.client_cores:.2f} |")
    return "\n".join(rows) + "\n"


def target_lines(results: dict[str, list[Level]]) -> list[str]:
    inproc = {s.streams: s.tps for s in results["in-process"]}
    ours = {s.streams: s.tps for s in results["ours"]}
    lines = []
    if 16 in ours:
        r = ours[16] / inproc[16]
        lines.append(f"ours / in-process at 16 streams: {r:.2f}x (target >= "
                     f"{TARGET_VS_IN_PROCESS}x): {'PASS' if r >= TARGET_VS_IN_PROCESS else 'FAIL'}")
    for name in ("baseline", PEER):
        other = {s.streams: s.tps for s in results.get(name, [])}
        for streams, tps in ours.items():
            if other.get(streams):
                r = tps / other[streams]
                verdict = ((" (target >= 1.5x): " + ("PASS" if r >= TARGET_VS_PEER else "FAIL"))
                           if name == PEER else "")
                lines.append(f"ours / {name} at {streams} streams: {r:.2f}x{verdict}")
    return lines


def single_table(single: dict[str, dict]) -> str:
    rows = ["| target | TTFT, max_tokens 1 (s) | one stream, whole reply (s) |",
            "|---|---:|---:|"]
    rows += [f"| {name} | {v['ttft_s']:.3f} | {v['latency_s']:.3f} |"
             for name, v in single.items()]
    return "\n".join(rows) + "\n"


def report(args: argparse.Namespace, tokens: int, results: dict[str, list[Level]],
           single: dict[str, dict], notes: list[str]) -> str:
    note = args.note or "measured on a shared machine"
    parts = [bench_report.header(f"HTTP overhead: {args.model}, {tokens} tokens/request", note),
             *[f"- {n}" for n in notes], "", level_table(results),
             *[f"- {line}" for line in target_lines(results)], "",
             "Single stream (best of the runs):", "", single_table(single)]
    return "\n".join(parts) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny:qwen3")
    parser.add_argument("--tokens", type=int, default=512)
    parser.add_argument("--levels", default="8,16,32")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="levels 8,16; 128 tokens; 1 round")
    parser.add_argument("--peer", action="store_true", help=f"also measure {PEER}")
    parser.add_argument("--baseline", default=None, help="another checkout's server too")
    parser.add_argument("--note", default="")
    parser.add_argument("--write-results", action="store_true")
    args = parser.parse_args(argv)
    if args.quick:
        args.levels, args.tokens, args.rounds = "8,16", 128, 1
    levels = sorted({int(x) for x in args.levels.split(",")})
    rounds, tokens = max(1, min(args.rounds, 5)), args.tokens
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    model_dir = peers.resolve_model(args.model)
    engine = start_engine(model_dir)
    try:
        with ExitStack() as stack:
            targets, notes = start_targets(stack, args, model_dir, tokens)
            notes += [f"{t.name}: {'; '.join(t.notes)}" for t in targets]
            results, single = asyncio.run(measure(engine, targets, levels, rounds, tokens))
    finally:
        engine.shutdown()
    text = report(args, tokens, results, single, notes)
    print("\n" + text)
    if args.write_results:
        bench_report.write_section(f"http overhead {args.model} {tokens}", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
