"""Scheduler policy: no started prompt waits forever, whatever keeps arriving; requests
holding media are told apart by identity, not by comparing their frames."""

from __future__ import annotations

import asyncio

import pytest

from tests.engine.test_batching import request
from tests.engine.test_parity import noise_clip
from vllm_mlx.engine import GenerationChunk, TextPart, VideoPart
from vllm_mlx.engine.loader import load_model
from vllm_mlx.engine.prefill_order import MAX_OVERTAKES
from vllm_mlx.engine.scheduler import Scheduler


@pytest.mark.parametrize("arch", ["qwen3", "qwen2_vl"])
def test_a_long_prompt_is_not_starved_by_a_stream_of_short_ones(arch, tiny_model):
    """A new short request every step used to keep a long prompt from ever advancing."""
    scheduler = Scheduler(load_model(str(tiny_model(arch))), prefill_chunk=64,
                          prefix_cache_bytes=0)
    first_token: dict[str, int] = {}
    step = 0

    def sink_for(name: str):
        def sink(item) -> None:
            assert not isinstance(item, Exception), item
            if isinstance(item, GenerationChunk):
                first_token.setdefault(name, step)
        return sink

    long = request([TextPart("word " * 400)], max_tokens=1)  # about 7 chunks
    scheduler.add(long, sink_for("long"), lambda: False)
    chunks = 8
    limit = (chunks + 4) * (MAX_OVERTAKES + 1)
    for step in range(limit):
        scheduler.add(request([TextPart(f"Hi {step}")], max_tokens=1),
                      sink_for(f"short {step}"), lambda: False)
        scheduler.step()
        if "long" in first_token:
            break
    assert "long" in first_token, f"no first token after {limit} steps"
    assert sum(name.startswith("short") for name in first_token) > first_token["long"] // 3


def test_concurrent_videos_of_equal_shape_all_complete(engine_for):
    """Equal-shape frames made ``seq in waiting`` compare arrays and fail every request."""
    engine = engine_for("qwen2_vl")
    questions = ["Describe every moment of this clip in detail, please. " * 3,
                 "What happens here, and why?", "What?"]  # the last one finishes first
    requests = [request([VideoPart(noise_clip(seed)), TextPart(question)], max_tokens=3)
                for seed, question in zip((41, 42, 43), questions)]

    async def together():
        return await asyncio.gather(*(engine.complete(r) for r in requests))

    results = asyncio.run(together())
    assert [len(r.token_ids) for r in results] == [3, 3, 3]
    alone = [engine.complete_sync(r).token_ids for r in requests]
    assert [r.token_ids for r in results] == alone
