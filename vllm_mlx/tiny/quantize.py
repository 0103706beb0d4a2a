"""Quantized copies of tiny models, made by the libraries' own convert paths.

Contract:
- ``QUANTIZE_BITS = (4, 8)``; ``check_bits(bits)`` accepts ``None`` (no quantization) or one
  of them, else raises ValueError naming the choices.
- ``convert_folder(src, out, bits, loader)`` writes the quantized copy of the model folder
  ``src`` into ``out`` with ``mlx_lm.convert`` (loader ``"mlx_lm"``) or ``mlx_vlm.convert``
  (``"mlx_vlm"``), group size ``GROUP_SIZE`` so that 64-wide layers quantize; the
  libraries' progress prints are kept off stdout. ``out`` may exist (files are moved in).
- ``parse_reference(spec)`` splits the part after ``tiny:`` — ``ARCH[:PRESET][:qBITS]`` —
  into ``(arch, preset, bits)``; ``preset`` defaults to ``"tiny"``, ``bits`` to ``None``.
"""

from __future__ import annotations

import contextlib
import io
import re
import shutil
import tempfile
from pathlib import Path

QUANTIZE_BITS: tuple[int, ...] = (4, 8)
GROUP_SIZE = 32  # the libraries' default 64 would skip the tiny models' 32-wide layers
_QUANT_SUFFIX = re.compile(r"q(\d+)")


def check_bits(bits: int | None) -> None:
    if bits is not None and bits not in QUANTIZE_BITS:
        raise ValueError(
            f"unknown quantize {bits!r}; valid: {', '.join(map(str, QUANTIZE_BITS))}"
        )


def parse_reference(spec: str) -> tuple[str, str, int | None]:
    """``qwen3`` -> (qwen3, tiny, None); ``qwen3:q4`` -> (qwen3, tiny, 4);
    ``qwen3:small:q8`` -> (qwen3, small, 8)."""
    parts = spec.split(":")
    bits = None
    match = _QUANT_SUFFIX.fullmatch(parts[-1]) if len(parts) > 1 else None
    if match:
        bits = int(match.group(1))
        parts = parts[:-1]
    check_bits(bits)
    arch, _, preset = ":".join(parts).partition(":")
    return arch, preset or "tiny", bits


def convert_folder(src: Path, out: Path, bits: int, loader: str) -> Path:
    """Quantize the model folder ``src`` into ``out`` (see the module docstring)."""
    check_bits(bits)
    with tempfile.TemporaryDirectory(prefix=".quantize.", dir=out.parent) as tmp:
        dst = Path(tmp) / "model"  # the converters refuse an existing folder
        with contextlib.redirect_stdout(io.StringIO()):
            _convert(loader, src, dst, bits)
        out.mkdir(parents=True, exist_ok=True)
        for item in sorted(dst.iterdir()):
            shutil.move(str(item), str(out / item.name))
    return out


def _convert(loader: str, src: Path, dst: Path, bits: int) -> None:
    if loader == "mlx_vlm":
        from mlx_vlm.convert import convert as vlm_convert

        vlm_convert(str(src), mlx_path=str(dst), quantize=True, q_bits=bits,
                    q_group_size=GROUP_SIZE, trust_remote_code=False)
    else:
        from mlx_lm.convert import convert as lm_convert

        lm_convert(str(src), mlx_path=str(dst), quantize=True, q_bits=bits,
                   q_group_size=GROUP_SIZE)
