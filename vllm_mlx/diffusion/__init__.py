"""Diffusion video generation: a Wan2.1 text/image-to-video pipeline written in MLX.

Public API (imported lazily: ``is_video_model_folder`` does not load MLX):

- ``WanPipeline.from_pretrained(path)`` and
  ``WanPipeline.generate(request, progress=None, should_cancel=None) -> VideoGenResult``;
  ``progress(fraction)`` of the estimated work after every transformer block and VAE
  stage, ``Cancelled`` raised once ``should_cancel()`` is true (polled at the same points);
  ``WanPipeline.calibrate()`` / ``estimate(resolved)``: the measured cost model (``cost``).
- ``VideoGenRequest`` / ``VideoGenResult`` / ``VideoDefaults`` / ``Cancelled``;
  ``round_frames(n)`` (nearest ``1 + 4k``).
- ``write_mp4(frames, fps, path_or_file)``, ``encode_mp4(frames, fps) -> bytes``,
  ``interpolate_frames(frames, fps, exp, method="auto") -> (frames, fps)``.
- ``build_tiny_wan(out_dir, seed=0, preset="tiny")``, ``ensure_tiny_wan(cache_dir=None,
  preset="tiny", seed=0)``: random-weight Diffusers folders (presets ``tiny``, ``mid``,
  ``tiny-i2v``).
- ``is_video_model_folder(path) -> bool``.
- ``SCHEDULERS = ("unipc", "euler")``.

Everything runs in float32 on MLX (CPU on Linux, with OpenBLAS; see ``_mlx``).
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from .folder import is_video_model_folder

_LAZY = {
    "WanPipeline": ".pipeline",
    "VideoGenRequest": ".request",
    "VideoGenResult": ".request",
    "VideoDefaults": ".request",
    "Cancelled": ".request",
    "round_frames": ".request",
    "SCHEDULERS": ".schedulers",
    "write_mp4": ".video_io",
    "encode_mp4": ".video_io",
    "interpolate_frames": ".video_io",
    "MIN_INTERPOLATION_SIDE": ".video_io",
    "build_tiny_wan": ".tiny",
    "ensure_tiny_wan": ".tiny",
}

__all__ = ["is_video_model_folder", *_LAZY]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(module, __name__), name)
