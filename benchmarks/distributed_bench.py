"""One process vs a two-rank tensor-parallel group (vllm_mlx.distributed): tokens/s and
per-rank peak memory, measured in the engine (no HTTP), on the ``small`` preset.

    python benchmarks/distributed_bench.py [--model tiny:qwen3:small] [--tokens 32]
                                           [--streams 1,4] [--repeats 2] [--write-results]

Each configuration runs in fresh processes: one plain process, then two ranks of the ring
backend over loopback TCP, each loading its half of the model, rank 0 replicating its
scheduler steps to rank 1 exactly as ``vllm-mlx serve --hostfile`` does. The ranks are
started directly (``MLX_RANK``, ``MLX_HOSTFILE``: what ``mlx.launch`` sets) rather than by
``mlx.launch``, whose output relay polls without sleeping and would take one of this
machine's two cores away from the ranks; each rank gets its share of the cores for its
BLAS threads, as ``vllm-mlx serve --hostfile`` gives ranks that share a host.

Rank 0 submits ``streams`` concurrent greedy requests of ``tokens`` tokens each
(``ignore_eos``) after a warm-up; every rank reports its peak MLX memory and peak RSS.
The configurations alternate (1, 2, 1, 2, ...) ``repeats`` times and each keeps its best
run per level: a shared machine's load swings within minutes. On
one machine both ranks share the same cores and memory: this measures the overhead of
splitting (collectives, step broadcast), not a speed-up, which needs the ranks on separate
machines.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve()
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE.parent.parent))


def _peak_rss_bytes() -> int:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)  # Linux reports KiB


def _run_streams(engine, streams: int, tokens: int) -> float:
    """Aggregate generated tokens per second of wall time for ``streams`` requests."""
    from vllm_mlx.engine import GenerationRequest, SamplingParams

    def one(i: int) -> None:
        engine.complete_sync(GenerationRequest(
            prompt=f"Story number {i}: once upon a time", cache_prefix=False,
            sampling=SamplingParams(max_tokens=tokens, ignore_eos=True)))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(streams)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return streams * tokens / (time.perf_counter() - started)


def worker(args: argparse.Namespace) -> None:
    """One rank (or the single process): load, measure, write ``out.rankN.json``."""
    from vllm_mlx.blas import activate_fast_blas

    activate_fast_blas()
    from vllm_mlx.distributed.launch import launched_rank
    from vllm_mlx.engine import Engine, LoadOptions

    rank = launched_rank()
    options, coordinator, size = LoadOptions(), None, 1
    if rank is not None:
        from vllm_mlx.distributed.coordinator import Follower, Leader
        from vllm_mlx.distributed.group import join_group
        from vllm_mlx.distributed.sharding import load_sharded

        group = join_group("ring", 120, {"model": args.model}, rank)
        size = group.size
        options = LoadOptions(group=group.handle, parallel="tensor", shard=load_sharded)
        coordinator = (Leader(group, 600) if group.rank == 0 else Follower(group, 600))
    rank = rank or 0
    loaded_at = time.perf_counter()
    engine = Engine.start(args.model, options, coordinator=coordinator)
    result: dict = {"rank": rank, "size": size, "load_s": time.perf_counter() - loaded_at}
    if rank == 0:
        _run_streams(engine, 1, 4)  # warm-up
        result["tokens_per_s"] = {str(n): _run_streams(engine, n, args.tokens)
                                  for n in args.stream_levels}
        engine.shutdown()
    else:
        coordinator.done.wait()  # type: ignore[union-attr]
    from vllm_mlx.engine._mlx import mx

    result.update(mlx_peak_bytes=mx.get_peak_memory(), rss_peak_bytes=_peak_rss_bytes())
    Path(args.out, f"rank{rank}.json").write_text(json.dumps(result))
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)  # the ring backend's threads would abort a normal interpreter exit


def _free_port_pair() -> int:
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = int(probe.getsockname()[1])
        with socket.socket() as a, socket.socket() as b:
            try:
                a.bind(("127.0.0.1", port))
                b.bind(("127.0.0.1", port + 1))
                return port
            except OSError:
                continue
    raise RuntimeError("no two consecutive free ports")


def run_config(args: argparse.Namespace, ranks: int) -> list[dict]:
    out = Path(tempfile.mkdtemp(prefix=f"dist-bench-{ranks}-"))
    worker_cmd = [sys.executable, str(HERE), "--worker", "--out", str(out), "--model",
                  args.model, "--tokens", str(args.tokens), "--streams", args.streams]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    if ranks == 1:
        subprocess.run(worker_cmd, check=True, env=env, stdin=subprocess.DEVNULL)
    else:
        port = _free_port_pair()
        ring = out / "ring.json"
        ring.write_text(json.dumps([[f"127.0.0.1:{port + r}"] for r in range(ranks)]))
        # Ranks on one host split its cores, as `vllm-mlx serve --hostfile` does.
        threads = str(max(1, (os.cpu_count() or 1) // ranks))
        processes = [subprocess.Popen(worker_cmd, stdin=subprocess.DEVNULL, env={
            "OPENBLAS_NUM_THREADS": threads, **env, "MLX_RANK": str(r),
            "MLX_HOSTFILE": str(ring)}) for r in range(ranks)]
        if any(p.wait() != 0 for p in processes):
            raise RuntimeError(f"a rank failed: {[p.returncode for p in processes]}")
    return [json.loads((out / f"rank{r}.json").read_text()) for r in range(ranks)]


def best_of(runs: list[list[dict]]) -> list[dict]:
    """Per rank: the highest tokens/s per level and the highest memory of all runs."""
    merged = [dict(rank_row) for rank_row in runs[0]]
    for run in runs[1:]:
        for mine, theirs in zip(merged, run):
            for key in ("mlx_peak_bytes", "rss_peak_bytes"):
                mine[key] = max(mine[key], theirs[key])
            mine["load_s"] = min(mine["load_s"], theirs["load_s"])
            if "tokens_per_s" in mine:
                mine["tokens_per_s"] = {n: max(rate, theirs["tokens_per_s"][n])
                                        for n, rate in mine["tokens_per_s"].items()}
    return merged


def report(results: dict[int, list[dict]], levels: list[int]) -> str:
    gib = 1024 ** 3
    lines = ["| ranks | " + " | ".join(f"{n} stream{'s' * (n > 1)} tok/s" for n in levels)
             + " | peak MLX memory per rank (GiB) | peak RSS per rank (GiB) | load s |",
             "|---|" + "---|" * len(levels) + "---|---|---|"]
    for ranks, rows in results.items():
        rate = " | ".join(f"{rows[0]['tokens_per_s'][str(n)]:.1f}" for n in levels)
        mlx = " / ".join(f"{r['mlx_peak_bytes'] / gib:.2f}" for r in rows)
        rss = " / ".join(f"{r['rss_peak_bytes'] / gib:.2f}" for r in rows)
        load = " / ".join(f"{r['load_s']:.1f}" for r in rows)
        lines.append(f"| {ranks} | {rate} | {mlx} | {rss} | {load} |")
    one, two = results[1][0]["tokens_per_s"], results[2][0]["tokens_per_s"]
    ratio = ", ".join(f"{n} stream{'s' * (n > 1)}: {two[str(n)] / one[str(n)]:.2f}x"
                      for n in levels)
    lines += ["", f"2 ranks / 1 process throughput: {ratio}."]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny:qwen3:small")
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--streams", default="1,4", help="concurrent requests, per level")
    parser.add_argument("--repeats", type=int, default=2,
                        help="fresh runs of each configuration, alternating; the best counts")
    parser.add_argument("--write-results", action="store_true")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--out", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.stream_levels = [int(x) for x in args.streams.split(",")]
    if args.worker:
        worker(args)
        return
    from bench_report import header, write_section

    started = header("Distributed: 1 process vs 2 tensor-parallel ranks (one machine)",
                     note="both ranks share this machine's cores and memory: this measures "
                          "the overhead of splitting the model, not a speed-up")
    runs: dict[int, list[list[dict]]] = {1: [], 2: []}
    for _ in range(args.repeats):
        for ranks in runs:
            runs[ranks].append(run_config(args, ranks))
    results = {ranks: best_of(config_runs) for ranks, config_runs in runs.items()}
    table = report(results, args.stream_levels)
    print(table)
    if args.write_results:
        detail = (f"\nModel `{args.model}`, {args.tokens} tokens per request, greedy, "
                  "engine only (no HTTP); aggregate tokens/s over wall time after a "
                  f"warm-up, best of {args.repeats} alternating runs. Ranks started directly with "
                  "`MLX_RANK`/`MLX_HOSTFILE` (ring, loopback), each with half the cores "
                  "for BLAS. Memory per rank: rank 0 / rank 1. Load average when done: "
                  + ", ".join(f"{x:.1f}" for x in os.getloadavg()) + ".\n\n")
        write_section("distributed", started + detail + table + "\n")


if __name__ == "__main__":
    main()
