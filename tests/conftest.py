"""Shared fixtures: tiny random-weight models (built once into a cache folder) and
engines on them (``engine_pool`` for a module's own engines with other options). Nothing is
downloaded; HF_HUB_OFFLINE keeps the libraries honest."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parent.parent
TINY_CACHE = Path(os.environ.get("VLLM_MLX_TEST_MODELS", REPO / ".tiny-models"))
VISION_ARCHS = ("qwen2_vl", "qwen2_5_vl", "qwen3_vl", "gemma3")
TEXT_ARCHS = ("qwen3", "llama")


# Phi-3-vision's tower is a full-size CLIP ViT-L whatever its config says: ~40 s an image.
SLOW_ARCHS = frozenset({"phi3_v"})


def _registry() -> tuple:
    from vllm_mlx.tiny import ARCHITECTURES

    return tuple(pytest.param(a, marks=pytest.mark.slow) if a in SLOW_ARCHS else a
                 for a in ARCHITECTURES)


ALL_ARCHS = _registry()  # every architecture the tiny builder knows (tests/families)


@pytest.fixture(scope="session")
def tiny_model() -> Callable[[str], Path]:
    from vllm_mlx.tiny import ensure_tiny_model

    def build(arch: str) -> Path:
        name, _, bits = arch.partition(":q")  # "qwen3:q4": the 4-bit copy
        return Path(ensure_tiny_model(name, cache_dir=TINY_CACHE,
                                      quantize=int(bits) if bits else None))

    return build


@contextmanager
def engine_pool(tiny_model: Callable[[str], Path], **options: Any
                ) -> Iterator[Callable[[str], Any]]:
    """arch -> an engine on its tiny folder, started once with ``options``; all are shut
    down on exit."""
    from vllm_mlx.engine import Engine

    engines: dict[str, Engine] = {}

    def get(arch: str) -> Engine:
        if arch not in engines:
            engines[arch] = Engine.start(str(tiny_model(arch)), **options)
        return engines[arch]

    try:
        yield get
    finally:
        for engine in engines.values():
            engine.shutdown()


@pytest.fixture(scope="session")
def engine_for(tiny_model) -> Iterator[Callable[[str], Any]]:
    with engine_pool(tiny_model) as get:
        yield get
