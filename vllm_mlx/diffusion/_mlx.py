"""The one place this package imports MLX.

Contract: importing this module routes MLX's CPU matrix products to OpenBLAS on Linux
(:func:`vllm_mlx.blas.activate_fast_blas`) *before* ``mlx.core`` is loaded, then re-exports
``mx`` and ``nn``. Every other module of the package does ``from ._mlx import mx, nn``.
"""

from __future__ import annotations

from vllm_mlx.blas import activate_fast_blas

activate_fast_blas()

import mlx.core as mx  # noqa: E402
import mlx.nn as nn  # noqa: E402

__all__ = ["mx", "nn"]
