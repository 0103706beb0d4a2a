"""Build every tiny random-weight model (chat and video) into one folder, printing paths.

    python scripts/build_tiny_models.py [OUT] [--preset tiny|small]

Useful to warm a machine's cache before running tests or benchmarks offline, or to get
model folders to point other servers at (the benchmarks serve the same folders to peers).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from vllm_mlx.tiny import ARCHITECTURES, ensure_tiny_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", nargs="?", type=Path, default=None,
                        help="cache folder (default: the user cache vllm-mlx uses)")
    parser.add_argument("--preset", default="tiny", choices=("tiny", "small"))
    parser.add_argument("--with-video", action="store_true", help="also build tiny Wan2.1")
    args = parser.parse_args()
    for arch in ARCHITECTURES:
        start = time.perf_counter()
        path = ensure_tiny_model(arch, args.preset, cache_dir=args.out)
        print(f"{arch:12s} {time.perf_counter() - start:6.1f} s  {path}")
    if args.with_video:
        from vllm_mlx.diffusion import ensure_tiny_wan

        print(f"{'wan2_1':12s}          {ensure_tiny_wan(cache_dir=args.out)}")


if __name__ == "__main__":
    main()
