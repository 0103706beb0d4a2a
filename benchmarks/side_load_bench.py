"""What an engine process of its own would buy here: a Python side load beside the engine,
on the engine's interpreter lock (a thread) or on its own (a process).

    PYTHONPATH=. python benchmarks/side_load_bench.py [--model tiny:qwen3] [--streams 16]
        [--tokens 256] [--duties 0.2,0.4] [--rounds 2]

The side load stands in for an HTTP layer: every 2 ms it wakes and runs pure Python for
``duty`` of that time (0.2: a fifth of a core). The engine decodes ``--streams`` streams
in this process (``Engine.generate`` on one asyncio loop, as ``http_overhead_bench.py``'s
in-process target) with no side load, with it on a thread of this process (sharing the
lock, as the event loop does in the server), and with it in a child process (its own
lock; only the cores are shared). If the thread costs the engine more than the process,
the lock is what slows a server's engine and a separate engine process would win that
back; if they cost the same, the cores are the limit and only less work per token helps.
Rounds are interleaved; each variant keeps its best round.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import threading
import time
from typing import Any

import http_overhead_bench as overhead
import peers

PERIOD_S = 0.002


def busy(stop: Any, duty: float) -> None:
    """Run pure Python for ``duty`` of every 2 ms until ``stop`` is set."""
    work = duty * PERIOD_S
    while not stop.is_set():
        start, total = time.perf_counter(), 0
        while time.perf_counter() - start < work:
            total += sum(range(50))
        time.sleep(max(0.0, PERIOD_S - work))


async def with_side_load(engine: Any, where: str, duty: float, streams: int,
                         tokens: int) -> overhead.Level:
    stop: Any = threading.Event() if where != "process" else multiprocessing.Event()
    worker: Any = None
    if where == "thread":
        worker = threading.Thread(target=busy, args=(stop, duty), daemon=True)
    elif where == "process":
        worker = multiprocessing.Process(target=busy, args=(stop, duty))
    if worker is not None:
        worker.start()
    try:
        return await overhead.engine_level(engine, streams, tokens)
    finally:
        stop.set()
        if worker is not None:
            worker.join()


async def measure(args: argparse.Namespace) -> list[tuple[str, overhead.Level]]:
    engine = overhead.start_engine(peers.resolve_model(args.model))
    variants = [("none", 0.0)] + [(w, d) for d in args.duties for w in ("thread", "process")]
    best: dict[tuple[str, float], overhead.Level] = {}
    try:
        await overhead.engine_level(engine, 4, 32)  # warm up
        for _ in range(args.rounds):
            for where, duty in variants:
                level = await with_side_load(engine, where, duty, args.streams, args.tokens)
                key = (where, duty)
                if key not in best or level.tps > best[key].tps:
                    best[key] = level
    finally:
        engine.shutdown()
    return [(f"{where} {duty:.0%}" if duty else "none", best[(where, duty)])
            for where, duty in variants]


def table(rows: list[tuple[str, overhead.Level]]) -> str:
    base = rows[0][1].tps
    lines = ["| side load | tok/s | x none | ms/step | process cores |",
             "|---|---:|---:|---:|---:|"]
    for name, level in rows:
        steps, seconds = level.steps
        step_ms = 1000 * seconds / steps if steps else 0.0
        lines.append(f"| {name} | {level.tps:.0f} | {level.tps / base:.2f} | {step_ms:.2f} | "
                     f"{level.client_cores:.2f} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="tiny:qwen3")
    parser.add_argument("--streams", type=int, default=16)
    parser.add_argument("--tokens", type=int, default=256)
    parser.add_argument("--duties", type=lambda s: [float(d) for d in s.split(",")],
                        default=[0.2, 0.4])
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    rows = asyncio.run(measure(args))
    print(f"### Side load beside the engine: {args.model}, {args.streams} streams, "
          f"{args.tokens} tokens\n")
    print(table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
