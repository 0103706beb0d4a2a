"""Fixtures for the diffusion tests: tiny random-weight Wan folders (built once into the shared
test cache) and pipelines opened on them; ``randomize`` gives any module seeded weights."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TINY_CACHE = Path(os.environ.get("VLLM_MLX_TEST_MODELS", REPO / ".tiny-models"))


def randomize(module, seed: int = 0):
    """Load checkpoint-style random weights (through the real layout conversion)."""
    from vllm_mlx.diffusion._mlx import mx
    from vllm_mlx.diffusion.tiny import random_state
    from vllm_mlx.diffusion.weights import to_mlx

    state = random_state(module, seed)
    module.load_weights([(k, to_mlx(k, mx.array(v))) for k, v in state.items()], strict=True)
    return module


@pytest.fixture(scope="session")
def tiny_wan_dir() -> Path:
    from vllm_mlx.diffusion import ensure_tiny_wan

    return ensure_tiny_wan(cache_dir=TINY_CACHE, preset="tiny")


@pytest.fixture(scope="session")
def tiny_i2v_dir() -> Path:
    from vllm_mlx.diffusion import ensure_tiny_wan

    return ensure_tiny_wan(cache_dir=TINY_CACHE, preset="tiny-i2v")


@pytest.fixture(scope="session")
def pipe(tiny_wan_dir):
    from vllm_mlx.diffusion import WanPipeline

    return WanPipeline.from_pretrained(tiny_wan_dir)


@pytest.fixture(scope="session")
def i2v_pipe(tiny_i2v_dir):
    from vllm_mlx.diffusion import WanPipeline

    return WanPipeline.from_pretrained(tiny_i2v_dir)
