"""The one place the engine imports MLX, after the BLAS choice has been made.

Modules that need MLX import ``mx`` from here, so OpenBLAS (or the caller's explicit
choice made earlier through :func:`vllm_mlx.blas.activate_fast_blas`) is always in place
before ``mlx.core`` loads.
"""

from ..blas import activate_fast_blas

activate_fast_blas()  # keeps an earlier explicit choice; otherwise the default (on)

import mlx.core as mx  # noqa: E402
import numpy as np  # noqa: E402

__all__ = ["int_list", "mx"]


def int_list(array: mx.array) -> list[int]:
    """An integer array's values, flattened, as Python ints (typed, unlike ``tolist``)."""
    return [int(v) for v in np.asarray(array).reshape(-1).tolist()]
