"""Llama 3.2 Vision (mllama) through the engine: greedy tokens equal mlx-vlm's, alone and
in one batch with other images and text-only requests (each row reads only its own
image state: :mod:`vllm_mlx.engine.cross_attention`)."""

from __future__ import annotations

import asyncio

import pytest

from tests.engine.test_parity import engine_tokens, greedy, noise_image, oracle_vlm_tokens
from vllm_mlx.engine import ChatMessage, GenerationRequest, ImagePart, TextPart

ARCH = "mllama"


@pytest.fixture(scope="module")
def oracle(tiny_model):
    import mlx_vlm

    return mlx_vlm.load(str(tiny_model(ARCH)))


def image_parts(seed: int, size=(72, 56)) -> list:
    return [ImagePart(noise_image(seed, size)), TextPart("What is in this image?")]


LONG = " ".join(["the quick brown fox jumps over the lazy dog"] * 40)  # > one chunk


@pytest.mark.parametrize("parts", [
    pytest.param(lambda: [TextPart("Say something.")], id="text"),
    # Without an image the cross-attention layers attend across the forward pass: the
    # engine must chunk the prompt as mlx-vlm does, whatever its own chunk size.
    pytest.param(lambda: [TextPart(LONG)], id="long_text"),
    pytest.param(lambda: image_parts(1), id="image"),
])
def test_parity_with_mlx_vlm(parts, engine_for, oracle):
    made = parts()
    ours = engine_tokens(engine_for(ARCH), made)
    assert list(ours) == oracle_vlm_tokens(*oracle, made)
    assert len(ours) > 0


def test_the_image_reaches_the_language_model(engine_for):
    engine = engine_for(ARCH)
    assert engine_tokens(engine, image_parts(1)) != engine_tokens(engine, image_parts(2))


def _request(parts) -> GenerationRequest:
    return GenerationRequest(messages=(ChatMessage("user", tuple(parts)),), sampling=greedy())


async def _together(engine, requests: list[GenerationRequest], stagger: float) -> list:
    async def one(index: int, req: GenerationRequest):
        await asyncio.sleep(stagger * index)
        return await engine.complete(req)

    return await asyncio.gather(*(one(i, r) for i, r in enumerate(requests)))


@pytest.mark.parametrize("stagger", [0.0, 0.01])
def test_concurrent_images_and_text_each_get_their_own_tokens(stagger, engine_for):
    """Rows of different lengths (left padding), images, no image, and two images (a
    longer state) in one batch."""
    engine = engine_for(ARCH)
    two = [ImagePart(noise_image(6)), ImagePart(noise_image(7, (48, 64))),
           TextPart("Compare these images.")]
    requests = [_request(image_parts(3)), _request([TextPart("Tell me a story.")]),
                _request(image_parts(4, (40, 64))), _request(image_parts(5, (64, 64))),
                _request(two)]
    alone = [engine.complete_sync(r).token_ids for r in requests]
    steps_before = engine.stats["decode_steps"]
    together = asyncio.run(_together(engine, requests, stagger))
    assert [r.token_ids for r in together] == alone
    assert len({tuple(t) for t in alone}) == len(alone)  # the rows really differ
    generated = sum(r.completion_tokens for r in together)
    assert engine.stats["decode_steps"] - steps_before < generated  # steps were shared


def test_cross_attention_cache_moves_states_with_their_rows():
    import mlx.core as mx

    from vllm_mlx.engine.cross_attention import CrossAttentionCache

    a, b, c = (mx.full((1, 4, 2), float(v)) for v in (1, 2, 3))
    batch = CrossAttentionCache.merge([CrossAttentionCache([a]), CrossAttentionCache([None])])
    batch.extend(CrossAttentionCache.merge([CrossAttentionCache([b]),
                                            CrossAttentionCache([mx.concatenate([c, c], 1)])]))
    assert [rows for rows, _ in batch.groups()] == [[0, 2], [1], [3]]
    batch.filter([2, 1, 3])
    assert batch.extract(0).states[0] is b and batch.extract(1).states == [None]
    assert [rows for rows, _ in batch.groups()] == [[0], [1], [2]]


def test_split_tower_passes_keyword_calls_through_as_one_piece():
    from vllm_mlx.engine.vision_passes import SplitTower

    split = SplitTower(lambda **kw: ("out", sorted(kw)))
    assert split(pixel_values=1, aspect_ratio_ids=2) == ("out", ["aspect_ratio_ids",
                                                                "pixel_values"])
    assert len(split.pieces) == 1
