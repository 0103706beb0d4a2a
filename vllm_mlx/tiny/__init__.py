"""Tiny random-weight models of real architectures: the project's test and bench fixtures.

Public API (everything else in this package is an implementation detail):

- ``ARCHITECTURES: dict[str, TinyArch]``: ``qwen2_vl``, ``qwen2_5_vl``, ``qwen3_vl``,
  ``gemma3`` (vision-language, opened with ``mlx_vlm.load``) and ``qwen3``, ``llama``
  (text, opened with ``mlx_lm.load``).  ``TinyArch`` tells ``is_vision``,
  ``supports_video``, ``loader`` and ``family``.
- ``PRESETS = ("tiny", "small")``: ``tiny`` (0.14-0.26M parameters, 2 layers, vocab 1024,
  images <= 16 tokens) and ``small`` (~0.5B parameters, Qwen3-0.6B-like LM, vocab 32000).
- ``build_tiny_model(out_dir, arch, preset="tiny", *, seed=0, dtype="float32") -> Path``
  writes the folder offline and deterministically (byte-identical for the same arguments
  and library versions).
- ``ensure_tiny_model(arch, preset="tiny", *, cache_dir=None, seed=0, dtype="float32")``
  builds once into ``$XDG_CACHE_HOME/vllm-mlx/tiny-models`` and returns the folder.
- ``quantize=4|8`` (both builders; CLI ``--quantize``): a quantized copy made by
  ``mlx_lm.convert`` / ``mlx_vlm.convert``, cached under its own name; as a model
  reference ``tiny:ARCH[:PRESET]:q4``.
- ``main(argv)``: ``python -m vllm_mlx.tiny OUT --arch ARCH [--preset] [--seed] [--dtype]``.

Load with ``HF_HUB_OFFLINE=1`` so a missing local path is never taken for a Hub repo id.
"""

from __future__ import annotations

from .archs import PRESETS
from .builder import BUILDER_VERSION, DTYPES, build_tiny_model, ensure_tiny_model
from .cli import main
from .recipe import TinyArch
from .registry import ARCHITECTURES

__all__ = [
    "ARCHITECTURES",
    "BUILDER_VERSION",
    "DTYPES",
    "PRESETS",
    "TinyArch",
    "build_tiny_model",
    "ensure_tiny_model",
    "main",
]
