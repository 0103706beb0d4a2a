"""fp32 matmul speed of MLX's CPU backend: OpenBLAS (our default on Linux) vs the stock
mlx-cpu wheel's reference BLAS, each measured in a fresh process (the BLAS choice is made
once per process, before MLX loads). Prints GFLOP/s for both and the speed-up.

    python benchmarks/blas_bench.py [--size 1024] [--repeats 5]

Target: speed-up >= 20x on Linux x86_64.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

CHILD = """
import json, sys, time
from vllm_mlx.blas import activate_fast_blas
info = activate_fast_blas(sys.argv[1] == "fast")
import mlx.core as mx
n, repeats = int(sys.argv[2]), int(sys.argv[3])
a = mx.random.normal((n, n)); b = mx.random.normal((n, n)); mx.eval(a, b)
mx.eval(a @ b)
best = float("inf")
for _ in range(repeats):
    t = time.perf_counter(); mx.eval(a @ b); best = min(best, time.perf_counter() - t)
print(json.dumps({"blas": info.name, "gflops": 2 * n**3 / best / 1e9}))
"""


def measure(mode: str, size: int, repeats: int) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, mode, str(size), str(repeats)],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    stock = measure("stock", args.size, args.repeats)
    fast = measure("fast", args.size, args.repeats)
    print(f"fp32 matmul {args.size}x{args.size}")
    print(f"  stock wheel ({stock['blas']}): {stock['gflops']:8.1f} GFLOP/s")
    print(f"  default     ({fast['blas']}): {fast['gflops']:8.1f} GFLOP/s")
    print(f"  speed-up: {fast['gflops'] / stock['gflops']:.1f}x (target >= 20x)")


if __name__ == "__main__":
    main()
