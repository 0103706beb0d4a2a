"""A live server of three tiny models for the UI tests (no tests here): ``tiny:qwen3`` the
default (loaded at start), ``tiny:llama`` and ``vl`` = ``tiny:qwen2_vl`` loaded on demand,
served in this process (uvicorn on a thread), as tests/api/test_several_models.py does."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.conftest import TINY_CACHE
from tests.live_server import serving
from vllm_mlx.config import Settings
from vllm_mlx.engine import GenerationRequest, SamplingParams
from vllm_mlx.engine.types import ChatMessage, TextPart
from vllm_mlx.server import build_registry

MODELS = ["tiny:qwen3", "tiny:llama", "vl"]


@contextmanager
def three_model_server(default_engine, storage: Path) -> Iterator[str]:
    """Yield the server's URL; the models loaded on demand are shut down after."""
    from vllm_mlx.api.app import create_app

    settings = Settings(model="tiny:qwen3", more_models=("tiny:llama", "vl=tiny:qwen2_vl"),
                        tiny_cache_dir=TINY_CACHE, storage_path=storage)
    registry = build_registry(settings, default_engine)
    try:
        with serving(create_app(settings, registry.default_engine, models=registry)) as port:
            yield f"http://127.0.0.1:{port}"
    finally:
        for name, engine in list(registry.engines()):
            if name != registry.default_name:
                engine.shutdown()


def states(url: str) -> dict[str, str]:
    cards = httpx.get(f"{url}/v1/models", timeout=10).json()["data"]
    return {card["id"]: card["state"] for card in cards}


def greedy(engine, text: str, max_tokens: int) -> str:
    """The engine's own greedy reply to one user message."""
    request = GenerationRequest(messages=[ChatMessage("user", [TextPart(text)])],
                                sampling=SamplingParams(max_tokens=max_tokens, temperature=0))
    return engine.complete_sync(request).text
