"""Command line: ``python -m vllm_mlx.tiny OUT --arch ARCH [--preset P] [--seed N] [--dtype D]
[--quantize 4|8]``.

Contract: ``main(argv)`` builds the folder (``--cache`` instead resolves/builds it in the
tiny-model cache and ignores OUT), prints its path and returns 0; bad choices exit with
argparse's usage error (status 2).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from .archs import PRESETS
from .builder import DTYPES, build_tiny_model, ensure_tiny_model
from .quantize import QUANTIZE_BITS
from .registry import ARCHITECTURES


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="vllm-mlx tiny-model",
        description="Write a random-weight model folder of a real architecture.",
    )
    p.add_argument("out", nargs="?", help="output folder (omit with --cache)")
    p.add_argument("--arch", required=True, choices=list(ARCHITECTURES))
    p.add_argument("--preset", default="tiny", choices=list(PRESETS))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dtype", default="float32", choices=list(DTYPES))
    p.add_argument("--quantize", type=int, choices=list(QUANTIZE_BITS), default=None,
                   help="quantized copy (mlx-lm / mlx-vlm convert, group size 32)")
    p.add_argument("--cache", action="store_true", help="build into the shared cache")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.cache:
        path = ensure_tiny_model(args.arch, args.preset, seed=args.seed, dtype=args.dtype,
                                 quantize=args.quantize)
    elif args.out:
        path = build_tiny_model(args.out, args.arch, args.preset, seed=args.seed, dtype=args.dtype,
                                quantize=args.quantize)
    else:
        parser.error("OUT is required unless --cache is given")
    print(path)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
