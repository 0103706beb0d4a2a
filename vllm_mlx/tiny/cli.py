"""Command line: ``python -m vllm_mlx.tiny OUT --arch ARCH [--preset P] [--seed N] [--dtype D]
[--quantize 4|8]``.

Contract: ``main(argv)`` builds the folder (``--cache`` instead resolves/builds it in the
tiny-model cache and ignores OUT), prints its path and returns 0; bad choices exit with
argparse's usage error (status 2). ``add_arguments`` and ``build`` are the same options and
action for ``vllm-mlx tiny-model``; its help lists every architecture.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from ..cli_help import HelpFormatter
from .archs import PRESETS
from .builder import DTYPES, build_tiny_model, ensure_tiny_model
from .quantize import QUANTIZE_BITS
from .registry import ARCHITECTURES


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="vllm-mlx tiny-model", formatter_class=HelpFormatter,
        description="Write a random-weight model folder of a real architecture.",
    )
    add_arguments(p)
    return p


def add_arguments(p: argparse.ArgumentParser, video_archs: Sequence[str] = (),
                  video_presets: Sequence[str] = ()) -> None:
    """The options of ``tiny-model``; ``video_archs`` (and their presets) are accepted too,
    for ``vllm-mlx tiny-model``, which builds those itself."""
    chat = ", ".join(ARCHITECTURES)
    video = f"; video (diffusion): {', '.join(video_archs)}" if video_archs else ""
    p.add_argument("out", nargs="?", help="output folder (omit it with --cache)")
    p.add_argument("--arch", required=True, metavar="ARCH",
                   choices=[*ARCHITECTURES, *video_archs],
                   help=f"required, no default: the architecture, one of: chat {chat}{video}")
    presets = dict.fromkeys([*PRESETS, *video_presets])
    p.add_argument("--preset", default="tiny", choices=list(presets),
                   help="model size: tiny (2 layers, vocab 1024) or small (~0.5B parameters)"
                        + (f"; video: {', '.join(video_presets)}" if video_presets else ""))
    p.add_argument("--seed", type=int, default=0, help="random seed of the weights")
    p.add_argument("--dtype", default="float32", choices=list(DTYPES),
                   help="dtype of the weights")
    p.add_argument("--quantize", type=int, choices=list(QUANTIZE_BITS), default=None,
                   help="bits of a quantized copy (mlx-lm / mlx-vlm convert, group size 32; "
                        "default: none, full precision)")
    p.add_argument("--cache", action="store_true",
                   help="build into the shared tiny-model cache, not OUT")


def build(args: argparse.Namespace) -> Path:
    """The folder ``args`` asks for (``ValueError`` when it cannot be built)."""
    if args.cache:
        return ensure_tiny_model(args.arch, args.preset, seed=args.seed, dtype=args.dtype,
                                 quantize=args.quantize)
    if not args.out:
        raise ValueError("OUT is required unless --cache is given")
    out = Path(args.out)
    if out.exists() and any(out.iterdir()):
        # files of another model left beside the new one would be loaded with it
        raise ValueError(f"{out} is not empty: give a new or empty folder")
    return build_tiny_model(args.out, args.arch, args.preset, seed=args.seed, dtype=args.dtype,
                            quantize=args.quantize)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if not args.cache and not args.out:
        parser.error("OUT is required unless --cache is given")
    try:
        print(build(args))
    except ValueError as exc:
        parser.error(str(exc))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
