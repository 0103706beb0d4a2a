"""Aggregate decode throughput at 1, 2, 4, 8, 16 concurrent streams, ours vs peers.

    python benchmarks/concurrency_bench.py [--model tiny:qwen3] [--tokens 64]
        [--servers ours,vllm-mlx-0.6.0,mlx-vlm] [--levels 1,2,4,8,16] [--rounds 1]
        [--blas same|stock] [--write-results] [--json OUT.json]
    python benchmarks/concurrency_bench.py --url http://127.0.0.1:8000 --model tiny:qwen3

Load: at each level C, C identical streaming chat completions are sent at once (same prompt,
``max_tokens`` = --tokens, temperature 0, ``stream_options.include_usage``). Ours gets
``ignore_eos``; the peers have none, so they get ``logit_bias`` -100 on the model's EOS ids
(``--url`` sends both). A request's token count is ``usage.completion_tokens`` when the
server sends it, else its count of non-empty content chunks; a count below --tokens is
reported as "short" (a wrong count, not silently accepted).

Servers are started by ``peers.py`` on free 127.0.0.1 ports (all at once, from the same model
folder) and measured interleaved: level by level, round by round, server after server, so
drifting machine load affects all alike. A server that cannot be installed or started is
reported with the reason and skipped. Every loop is bounded: levels <= 64 streams,
--rounds <= 10, each level has a --level-timeout and each request a --request-timeout.

Definitions (per level, over the requests that succeeded):

* decode tok/s (the headline) = sum_i (n_i - 1) / (max_i t_last_i - min_i t_first_i): tokens
  after each stream's first one, over the window in which any stream was decoding. A server
  that serializes requests is not flattered (unlike the sum of per-stream rates).
* sum of stream rates = sum_i (n_i - 1) / (t_last_i - t_first_i) (shown for reference).
* e2e tok/s = sum_i n_i / (max_i t_done_i - min_i t_sent_i), including queueing and TTFT.

A level whose decode window is under 25% of its wall time is marked ``*``: time to first
token dominated, or tokens arrived in bursts (both happen with the tiny models, whose whole
decode takes milliseconds); its decode tok/s is unreliable and e2e tok/s is the figure to read.

With --rounds > 1 each level keeps its best round (highest decode tok/s); errors are summed
over all rounds. Targets (``small`` preset): ours at 8 streams >= 4x ours at 1 stream;
ours >= 1.5x vllm-mlx 0.6.0 at 8 streams; no request fails (no 503s).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import sys
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import bench_report
import httpx
import peers
from bench_client import RequestResult, new_client, one_request

PROMPT = "Write a long story about a lighthouse keeper."
MAX_STREAMS = 64
MAX_ROUNDS = 10
TARGET_SCALING = 4.0
TARGET_VS_060 = 1.5
BASELINE_PEER = "vllm-mlx-0.6.0"
BURSTY_FRACTION = 0.25


@dataclass
class LevelStats:
    """Aggregates of one level (one round) for one server."""

    streams: int
    sent: int
    ok: int
    errors: dict[str, int] = field(default_factory=dict)
    short: int = 0
    tokens_min: int = 0
    tokens_max: int = 0
    counted_by: str = ""
    decode_tps: float = 0.0
    sum_stream_tps: float = 0.0
    e2e_tps: float = 0.0
    ttft_p50_s: float = 0.0
    bursty: bool = False  # the decode window is < BURSTY_FRACTION of the level's span


@dataclass
class Target:
    """A server to load: where it is and how to ask it for fixed-length completions."""

    name: str
    base_url: str
    body: dict[str, Any]
    notes: list[str] = field(default_factory=list)


# ----------------------------------------------------------------------------- requests


def request_body(model: str, tokens: int, eos: list[int], *, ignore_eos: bool,
                 bias: bool) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": model, "messages": [{"role": "user", "content": PROMPT}],
        "max_tokens": tokens, "temperature": 0.0, "stream": True,
        "stream_options": {"include_usage": True},
    }
    if ignore_eos:
        body["ignore_eos"] = True
    if bias and eos:
        body["logit_bias"] = {str(i): -100.0 for i in eos}
    return body


async def run_level(client: httpx.AsyncClient, target: Target, streams: int,
                    timeout_s: float) -> list[RequestResult]:
    url = f"{target.base_url}/v1/chat/completions"
    tasks = [asyncio.ensure_future(one_request(client, url, target.body))
             for _ in range(streams)]
    _, pending = await asyncio.wait(tasks, timeout=timeout_s)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    out: list[RequestResult] = []
    for task in tasks:
        if task in pending:
            out.append(RequestResult(error=f"level timeout {timeout_s:.0f}s"))
        else:
            out.append(task.result())
    return out


# ----------------------------------------------------------------------------- statistics


def _error_key(r: RequestResult) -> str:
    if r.status and r.status != 200:
        return f"HTTP {r.status}"
    return r.error.split(":")[0] if r.error else "no tokens"


def level_stats(streams: int, results: list[RequestResult], expected: int) -> LevelStats:
    good = [r for r in results if r.ok]
    stats = LevelStats(streams=streams, sent=len(results), ok=len(good),
                       errors=dict(Counter(_error_key(r) for r in results if not r.ok)))
    if not good:
        return stats
    counts = [r.tokens for r in good]
    stats.tokens_min, stats.tokens_max = min(counts), max(counts)
    stats.short = sum(c < expected for c in counts)
    stats.counted_by = "usage" if all(r.from_usage for r in good) else "chunks"
    window = max(r.last or 0.0 for r in good) - min(r.first or 0.0 for r in good)
    decoded = sum(max(r.tokens - 1, 0) for r in good)
    stats.decode_tps = decoded / window if window > 0 else 0.0
    stats.sum_stream_tps = sum((r.tokens - 1) / (r.last - r.first) for r in good
                               if r.last and r.first and r.last > r.first and r.tokens > 1)
    span = max(r.done or 0.0 for r in good) - min(r.sent for r in good)
    stats.e2e_tps = sum(counts) / span if span > 0 else 0.0
    stats.bursty = window < BURSTY_FRACTION * span
    stats.ttft_p50_s = statistics.median((r.first or r.sent) - r.sent for r in good)
    return stats


def merge_rounds(rounds: list[LevelStats]) -> LevelStats:
    """The best round by decode tok/s, with sent/ok/errors/short summed over all rounds."""
    best = max(rounds, key=lambda s: s.decode_tps)
    merged = LevelStats(**{**asdict(best), "errors": {}})
    merged.sent = sum(s.sent for s in rounds)
    merged.ok = sum(s.ok for s in rounds)
    merged.short = sum(s.short for s in rounds)
    errors: Counter[str] = Counter()
    for s in rounds:
        errors.update(s.errors)
    merged.errors = dict(errors)
    return merged


# ----------------------------------------------------------------------------- tables


def _errors_text(s: LevelStats) -> str:
    parts = [f"{k} x{v}" for k, v in sorted(s.errors.items())]
    if s.short:
        parts.append(f"short x{s.short}")
    return ", ".join(parts) or "0"


def server_table(name: str, levels: list[LevelStats]) -> str:
    base = levels[0].decode_tps if levels and levels[0].streams == 1 else 0.0
    rows = [f"**{name}**", "",
            "| streams | ok/sent | errors | tokens/req | decode tok/s | x vs 1 stream "
            "| sum of stream rates | e2e tok/s | TTFT p50 (s) |",
            "|---:|---:|---|---|---:|---:|---:|---:|---:|"]
    for s in levels:
        ratio = f"{s.decode_tps / base:.2f}" if base else "-"
        toks = f"{s.tokens_min}-{s.tokens_max} ({s.counted_by})" if s.ok else "-"
        flag = " *" if s.bursty else ""
        rows.append(f"| {s.streams} | {s.ok}/{s.sent} | {_errors_text(s)} | {toks} "
                    f"| {s.decode_tps:.1f}{flag} | {ratio} | {s.sum_stream_tps:.1f} "
                    f"| {s.e2e_tps:.1f} | {s.ttft_p50_s:.3f} |")
    if any(s.bursty for s in levels):
        rows.append(f"\n\\* decode window under {BURSTY_FRACTION:.0%} of the level's wall "
                    "time (TTFT dominated or tokens came in bursts): decode tok/s is "
                    "unreliable there; e2e tok/s is the robust figure.")
    return "\n".join(rows) + "\n"


def comparison_table(results: dict[str, list[LevelStats]]) -> str:
    peers_measured = [n for n in results if n != "ours"]
    if "ours" not in results or not peers_measured:
        return ""
    head = "| streams | ours tok/s | " + " | ".join(
        f"{p} tok/s | ours/{p}" for p in peers_measured) + " |"
    rows = [head, "|---:|---:|" + "---:|---:|" * len(peers_measured)]
    for i, ours in enumerate(results["ours"]):
        cells = [f"{ours.streams}", f"{ours.decode_tps:.1f}"]
        for p in peers_measured:
            peer = results[p][i] if i < len(results[p]) else None
            if peer is None:
                cells += ["-", "-"]
                continue
            cells.append(f"{peer.decode_tps:.1f}")
            ratio = ours.decode_tps / peer.decode_tps if peer.decode_tps > 0 else None
            cells.append("-" if ratio is None else f"{ratio:.2f}")
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows) + "\n"


def _at(levels: list[LevelStats], streams: int) -> LevelStats | None:
    return next((s for s in levels if s.streams == streams), None)


def target_lines(results: dict[str, list[LevelStats]]) -> list[str]:
    ours = results.get("ours")
    if not ours:
        return []
    one, eight = _at(ours, 1), _at(ours, 8)
    lines = []
    if one and eight and one.decode_tps > 0:
        r = eight.decode_tps / one.decode_tps
        lines.append(f"ours 8 streams / 1 stream: {r:.2f}x (target >= {TARGET_SCALING}x on "
                     f"the small preset): {'PASS' if r >= TARGET_SCALING else 'FAIL'}")
    peer8 = _at(results.get(BASELINE_PEER, []), 8)
    if eight and peer8 and peer8.decode_tps > 0:
        r = eight.decode_tps / peer8.decode_tps
        lines.append(f"ours / {BASELINE_PEER} at 8 streams: {r:.2f}x (target >= "
                     f"{TARGET_VS_060}x): {'PASS' if r >= TARGET_VS_060 else 'FAIL'}")
    failed = sum(s.sent - s.ok + s.short for s in ours)
    lines.append(f"ours failed or short requests: {failed} (target 0): "
                 f"{'PASS' if failed == 0 else 'FAIL'}")
    return lines


# ----------------------------------------------------------------------------- driver


async def measure(targets: list[Target], levels: list[int], rounds: int, tokens: int,
                  request_timeout: float, level_timeout: float) -> dict[str, list[LevelStats]]:
    per_round: dict[str, dict[int, list[LevelStats]]] = {t.name: {} for t in targets}
    async with new_client(request_timeout, MAX_STREAMS * 2) as client:
        for target in targets:  # warm-up: one stream, then two at once, short
            warm = Target(target.name, target.base_url, {**target.body, "max_tokens": 8})
            await run_level(client, warm, 1, level_timeout)
            await run_level(client, warm, 2, level_timeout)
        for streams in levels:
            for _ in range(rounds):
                for target in targets:
                    results = await run_level(client, target, streams, level_timeout)
                    stats = level_stats(streams, results, tokens)
                    per_round[target.name].setdefault(streams, []).append(stats)
                    print(f"  {target.name:>15} {streams:>2} streams: {stats.decode_tps:8.1f} "
                          f"decode tok/s, ok {stats.ok}/{stats.sent} {_errors_text(stats)}",
                          flush=True)
    return {name: [merge_rounds(r[s]) for s in levels] for name, r in per_round.items()}


def _parse_levels(text: str) -> list[int]:
    levels = sorted({int(x) for x in text.split(",") if x.strip()})
    if not levels or levels[0] < 1 or levels[-1] > MAX_STREAMS:
        raise SystemExit(f"--levels must be within 1..{MAX_STREAMS}")
    return levels


def _url_target(args: argparse.Namespace, eos: list[int]) -> Target:
    body = request_body(args.url_model, args.tokens, eos, ignore_eos=True, bias=True)
    return Target("server", args.url.rstrip("/"), body, [f"URL {args.url}"])


def _start_targets(stack: contextlib.ExitStack, args: argparse.Namespace, model_dir: Path,
                   eos: list[int], unavailable: dict[str, str]) -> list[Target]:
    targets = []
    for name in [n.strip() for n in args.servers.split(",") if n.strip()]:
        try:
            server = stack.enter_context(peers.running(
                name, model_dir, log_dir=Path(args.log_dir), blas=args.blas))
        except peers.PeerUnavailable as exc:
            unavailable[name] = exc.summary()
            print(f"{name}: UNAVAILABLE: {exc}", flush=True)
            continue
        except ValueError as exc:
            unavailable[name] = str(exc)
            print(f"{name}: UNAVAILABLE: {exc}", flush=True)
            continue
        body = request_body(server.request_model, args.tokens, eos,
                            ignore_eos=server.supports_ignore_eos,
                            bias=not server.supports_ignore_eos)
        targets.append(Target(name, server.base_url, body, server.notes))
        print(f"{name}: {server.base_url}; {'; '.join(server.notes)}", flush=True)
    return targets


def report(args: argparse.Namespace, model_dir: Path, targets: list[Target],
           results: dict[str, list[LevelStats]], unavailable: dict[str, str]) -> str:
    note = args.note or "measured under load (shared machine)"
    parts = [bench_report.header(f"Concurrency: {args.model}, {args.tokens} tokens/request",
                                 note),
             f"- Model folder: `{model_dir}`", f"- BLAS: {args.blas}"]
    parts += [f"- {t.name}: {'; '.join(t.notes)}" for t in targets]
    parts += [f"- {name}: UNAVAILABLE: {reason}"
              for name, reason in unavailable.items()]
    parts.append("")
    parts += [server_table(name, levels) for name, levels in results.items()]
    comparison = comparison_table(results)
    if comparison:
        parts += ["**Ratios (decode tok/s)**", "", comparison]
    parts += [f"- {line}" for line in target_lines(results)]
    return "\n".join(parts) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny:qwen3")
    parser.add_argument("--servers", default="ours,vllm-mlx-0.6.0,mlx-vlm")
    parser.add_argument("--url", default=None, help="load this running server instead")
    parser.add_argument("--url-model", default="default", help="model name for --url")
    parser.add_argument("--levels", default="1,2,4,8,16")
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--request-timeout", type=float, default=600.0)
    parser.add_argument("--level-timeout", type=float, default=900.0)
    parser.add_argument("--blas", choices=peers.BLAS_CHOICES, default="same")
    parser.add_argument("--log-dir", default=str(peers.VENV_ROOT / "logs"))
    parser.add_argument("--note", default="")
    parser.add_argument("--json", default=None, help="also write raw results here")
    parser.add_argument("--write-results", action="store_true",
                        help=f"update the section of this run in {bench_report.RESULTS_MD}")
    args = parser.parse_args(argv)
    levels = _parse_levels(args.levels)
    rounds = max(1, min(args.rounds, MAX_ROUNDS))
    model_dir = peers.resolve_model(args.model)
    eos = peers.eos_token_ids(model_dir)
    unavailable: dict[str, str] = {}
    with contextlib.ExitStack() as stack:
        targets = ([_url_target(args, eos)] if args.url
                   else _start_targets(stack, args, model_dir, eos, unavailable))
        if not targets:
            print("no server to measure")
            return 1
        results = asyncio.run(measure(targets, levels, rounds, args.tokens,
                                      args.request_timeout, args.level_timeout))
    text = report(args, model_dir, targets, results, unavailable)
    print("\n" + text)
    if args.json:
        Path(args.json).write_text(json.dumps(
            {k: [asdict(s) for s in v] for k, v in results.items()}, indent=1))
    if args.write_results:
        bench_report.write_section(f"concurrency {args.model} {args.tokens}", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
