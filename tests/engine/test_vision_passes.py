"""Vision encoding is spread over scheduler steps, one pass per image or video piece,
and gives the tokens of the joint pass (the parity tests compare with mlx-vlm's own)."""

from __future__ import annotations

import asyncio

import mlx.core as mx

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
from vllm_mlx.engine.vision_passes import SplitTower


def ask(parts, **sampling) -> GenerationRequest:
    return GenerationRequest(messages=(ChatMessage("user", tuple(parts)),),
                             sampling=SamplingParams(**sampling), cache_prefix=False)


def test_images_and_video_pieces_are_encoded_one_per_step(tiny_model):
    engine = Engine.start(str(tiny_model("qwen2_vl")), vision_cache_bytes=0)
    try:
        # 12 frames = 6 temporal patches = passes of 4 and 2. (Qwen2-VL in mlx-vlm reads
        # either images or a video per prompt, so images are checked separately.)
        # max_tokens=1: its one chunk arrives with its first token (a longer answer's text
        # may be held back until a later token completes a character).
        visual = ask([VideoPart(noise_clip(3, frames=12)), TextPart("Describe.")],
                     max_tokens=1, ignore_eos=True)
        background = ask([TextPart("Go on")], max_tokens=400, ignore_eos=True)
        steps_before_first: list[int] = []

        async def run() -> None:
            async def long_stream() -> None:
                async for _ in engine.generate(background):
                    if steps_before_first:
                        break

            async def newcomer() -> None:
                while engine.stats["decode_steps"] < 3:  # join a batch already decoding
                    await asyncio.sleep(0.001)
                start = engine.stats["decode_steps"]
                async for _ in engine.generate(visual):
                    steps_before_first.append(engine.stats["decode_steps"] - start)

            await asyncio.gather(long_stream(), newcomer())

        before = engine.stats["vision_encoder_passes"]
        asyncio.run(run())
        assert engine.stats["vision_encoder_passes"] - before == 2
        # The running request decoded during the newcomer's passes, prefill and first
        # token: its start (with the first pass), second pass and prefill each come in a
        # step after that step's decode (both passes in one step would make it two).
        assert steps_before_first[0] >= 3
        before = engine.stats["vision_encoder_passes"]
        engine.complete_sync(ask([ImagePart(noise_image(1)), ImagePart(noise_image(2, (40, 64))),
                                  TextPart("Compare.")], max_tokens=2))
        assert engine.stats["vision_encoder_passes"] - before == 2
    finally:
        engine.shutdown()


class _Tower:
    def __init__(self) -> None:
        self.calls: list[tuple[int, ...]] = []

    def __call__(self, pixels: mx.array, grid: mx.array) -> mx.array:
        self.calls.append(tuple(int(v) for v in grid.reshape(-1).tolist()))
        return pixels[::4] * 3  # a 2x2 spatial merge, like the Qwen towers


def test_split_tower_concatenates_to_the_joint_output():
    tower = _Tower()
    grid = mx.array([[1, 2, 4], [6, 2, 2]])  # an image, then a 6-patch video
    pixels = mx.arange((8 + 24) * 3, dtype=mx.float32).reshape(32, 3)
    split = SplitTower(tower, video_patches_per_pass=4)
    joined = split(pixels, grid)
    assert tower.calls == [(1, 2, 4), (4, 2, 2), (2, 2, 2)]
    assert len(split.pieces) == 3
    assert mx.array_equal(joined, mx.concatenate([pixels[:8][::4], pixels[8:24][::4],
                                                  pixels[24:][::4]]) * 3)
