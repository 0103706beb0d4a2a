"""Vision feature cache: the same media with different text skip the vision tower and
give exactly the tokens of a cold run; order and sampled frames are part of the key;
memory stays within its bound."""

from __future__ import annotations

import mlx.core as mx
import mlx.nn as nn
import pytest

from tests.engine.test_parity import noise_clip, noise_image
from vllm_mlx.engine import (
    ChatMessage,
    Engine,
    GenerationRequest,
    ImagePart,
    SamplingParams,
    TextPart,
    VideoPart,
)
from vllm_mlx.engine.vision_cache import VisionFeatureCache, feature_key


def ask(system: str, parts, max_tokens: int = 6) -> GenerationRequest:
    return GenerationRequest(
        messages=(ChatMessage("system", (TextPart(system),)), ChatMessage("user", tuple(parts))),
        sampling=SamplingParams(max_tokens=max_tokens, ignore_eos=True))


def media_parts(native_video: bool):
    parts = [ImagePart(noise_image(5)), ImagePart(noise_image(6, (40, 64)))]
    if native_video:
        parts.append(VideoPart(noise_clip(7)))
    return parts


@pytest.fixture(scope="module")
def cold_engine(tiny_model):
    """Engines with neither cache: the reference for every hit."""
    engines: dict[str, Engine] = {}

    def get(arch: str) -> Engine:
        if arch not in engines:
            engines[arch] = Engine.start(str(tiny_model(arch)), prefix_cache_bytes=0,
                                         vision_cache_bytes=0)
        return engines[arch]

    yield get
    for engine in engines.values():
        engine.shutdown()


@pytest.mark.parametrize("arch", ["qwen2_vl", "qwen3_vl", "gemma3"])
def test_same_media_new_text_hits_and_matches_a_cold_run(arch, tiny_model, cold_engine):
    engine = Engine.start(str(tiny_model(arch)), prefix_cache_bytes=0)
    try:
        parts = media_parts(engine.model.capabilities.native_video)
        first = ask("You are terse.", [*parts, TextPart("What is shown?")])
        follow = ask("You are a careful art critic.", [*parts, TextPart("Compare them.")])
        engine.complete_sync(first)
        before = engine.stats
        warm = engine.complete_sync(follow)
        after = engine.stats
        assert after["vision_cache_hits"] == before["vision_cache_hits"] + 1
        assert after["vision_cache_misses"] == before["vision_cache_misses"]
        assert warm.token_ids == cold_engine(arch).complete_sync(follow).token_ids
    finally:
        engine.shutdown()


def test_media_order_and_sampled_frames_are_part_of_the_key(engine_for):
    engine = engine_for("qwen2_vl")
    a, b = ImagePart(noise_image(11)), ImagePart(noise_image(12))
    engine.complete_sync(ask("One.", [a, b, TextPart("Which is brighter?")]))
    before = engine.stats["vision_cache_misses"]
    engine.complete_sync(ask("Two.", [b, a, TextPart("Which is brighter?")]))
    clip = noise_clip(13)
    fewer = noise_clip(13, frames=2)
    engine.complete_sync(ask("Three.", [VideoPart(clip), TextPart("What happens?")]))
    engine.complete_sync(ask("Four.", [VideoPart(fewer), TextPart("What happens?")]))
    assert engine.stats["vision_cache_misses"] == before + 3


class _Tower(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def __call__(self, pixels: mx.array) -> mx.array:
        self.calls += 1
        return pixels * 2


class _Model(nn.Module):
    """Stands in for a model: its vision tower is a child module, as in mlx-vlm."""

    def __init__(self) -> None:
        super().__init__()
        self.vision_tower = _Tower()

    def embed(self, pixels: mx.array) -> mx.array:
        return self.vision_tower(pixels)


def test_entries_are_evicted_least_recently_used_within_the_byte_bound():
    pixels = mx.ones((4, 64), dtype=mx.float32)  # 1 KiB of features per entry
    cache = VisionFeatureCache(max_bytes=2 * pixels.nbytes)
    model = _Model()
    tower = model.vision_tower
    for name in ("a", "b", "a", "c"):  # "b" is then the least recently used
        with cache.around(model, ((name,), (4, 64), ())):
            model.embed(pixels)
    assert len(cache) == 2 and cache.nbytes <= cache.max_bytes
    assert tower.calls == 3  # the second "a" was replayed
    calls = tower.calls
    with cache.around(model, (("b",), (4, 64), ())):
        model.embed(pixels)
    assert tower.calls == calls + 1  # evicted: computed again
    assert model.vision_tower is tower  # the shadow is gone after the block


def test_the_key_follows_the_media_not_per_token_outputs():
    """Gemma 3's processor (transformers < 5.25) returns token_type_ids, one per prompt
    token: in the key, they made a follow-up question on the same images a miss."""
    def key(token_types: mx.array, grid: list[int]) -> object:
        return feature_key(("a", "b"), mx.zeros((2, 3)), {
            "token_type_ids": token_types, "image_grid_thw": mx.array([grid])})

    assert key(mx.zeros((1, 10)), [1, 2, 2]) == key(mx.ones((1, 14)), [1, 2, 2])
    assert key(mx.zeros((1, 10)), [1, 2, 2]) != key(mx.zeros((1, 10)), [1, 4, 2])
