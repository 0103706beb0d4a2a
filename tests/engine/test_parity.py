"""The correctness oracle: greedy tokens through our engine equal what mlx-vlm / mlx-lm
give directly (their own load, chat template and generate) for the same inputs."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from tests.conftest import TEXT_ARCHS, VISION_ARCHS
from vllm_mlx.engine import (
    ChatMessage,
    GenerationRequest,
    ImagePart,
    SamplingParams,
    TextPart,
    VideoClip,
    VideoPart,
)

MAX_TOKENS = 12


def noise_image(seed: int, size=(72, 56)) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))


def noise_clip(seed: int, frames: int = 4) -> VideoClip:
    rng = np.random.default_rng(seed)
    data = rng.integers(0, 256, (frames, 56, 56, 3), dtype=np.uint8)
    return VideoClip(frames=data, timestamps=tuple(0.25 + 0.5 * i for i in range(frames)),
                     frame_indices=tuple(2 * i for i in range(frames)), source_fps=4.0,
                     total_frames=2 * frames, sampled_fps=2.0)


def greedy(**kwargs) -> SamplingParams:
    return SamplingParams(max_tokens=MAX_TOKENS, temperature=0.0, **kwargs)


def engine_tokens(engine, parts) -> tuple[int, ...]:
    request = GenerationRequest(messages=(ChatMessage("user", tuple(parts)),),
                                sampling=greedy())
    return engine.complete_sync(request).token_ids


def template_parts(parts) -> list[dict]:
    kinds = {TextPart: "text", ImagePart: "image", VideoPart: "video"}
    return [{"type": "text", "text": p.text} if isinstance(p, TextPart)
            else {"type": kinds[type(p)]} for p in parts]


@pytest.fixture(scope="module")
def oracle_models(tiny_model):
    import mlx_vlm

    cache: dict[str, tuple] = {}

    def get(arch: str):
        if arch not in cache:
            cache[arch] = mlx_vlm.load(str(tiny_model(arch)))
        return cache[arch]

    return get


def oracle_vlm_tokens(model, processor, parts) -> list[int]:
    import mlx_vlm
    from mlx_vlm.prompt_utils import get_chat_template
    from mlx_vlm.utils import VideoMetadata

    messages = [{"role": "user", "content": template_parts(parts)}]
    prompt = get_chat_template(processor, messages, True)
    images = [p.image for p in parts if isinstance(p, ImagePart)]
    clips = [p.video for p in parts if isinstance(p, VideoPart)]
    kwargs = {}
    if clips:
        kwargs["video"] = [c.frames.transpose(0, 3, 1, 2) for c in clips]
        kwargs["video_metadata"] = [VideoMetadata(
            total_num_frames=c.total_frames, fps=c.source_fps,
            frames_indices=list(c.frame_indices)) for c in clips]
    result = mlx_vlm.generate(model, processor, prompt, image=images or None,
                              max_tokens=MAX_TOKENS, temperature=0.0, **kwargs)
    return list(result.token_ids or [])


CASES = {
    "text": lambda: [TextPart("Say something.")],
    "image": lambda: [ImagePart(noise_image(1)), TextPart("What is in this image?")],
    "two_images": lambda: [ImagePart(noise_image(2)), ImagePart(noise_image(3, (48, 64))),
                           TextPart("Compare these images.")],
}


@pytest.mark.parametrize("arch", VISION_ARCHS)
@pytest.mark.parametrize("case", sorted(CASES))
def test_vision_parity(arch, case, engine_for, oracle_models):
    parts = CASES[case]()
    ours = engine_tokens(engine_for(arch), parts)
    model, processor = oracle_models(arch)
    assert list(ours) == oracle_vlm_tokens(model, processor, parts)
    assert len(ours) > 0


@pytest.mark.parametrize("arch", ["qwen2_vl", "qwen2_5_vl", "qwen3_vl"])
def test_native_video_parity(arch, engine_for, oracle_models):
    engine = engine_for(arch)
    assert engine.model.capabilities.native_video
    # 12 frames: 6 temporal patches, which our engine encodes in two passes (4 + 2).
    parts = [VideoPart(noise_clip(4, frames=12)), TextPart("What happens in this video?")]
    ours = engine_tokens(engine, parts)
    model, processor = oracle_models(arch)
    assert list(ours) == oracle_vlm_tokens(model, processor, parts)


def test_frames_as_images_for_models_without_native_video(engine_for, oracle_models):
    engine = engine_for("gemma3")
    assert not engine.model.capabilities.native_video
    clip = noise_clip(5, frames=2)
    ours = engine_tokens(engine, [VideoPart(clip), TextPart("Describe.")])
    expanded = []
    for t, frame in zip(clip.timestamps, clip.frames):
        expanded += [TextPart(f"<{t:.1f}s>"), ImagePart(Image.fromarray(frame))]
    model, processor = oracle_models("gemma3")
    assert list(ours) == oracle_vlm_tokens(model, processor, expanded + [TextPart("Describe.")])


@pytest.mark.parametrize("arch", VISION_ARCHS)
def test_image_content_reaches_the_model(arch, engine_for):
    """Different images must change the prompt's image tokens' effect on the output
    distribution; otherwise the parity above would be vacuous."""
    engine = engine_for(arch)

    def first_logprobs(image):
        request = GenerationRequest(
            messages=(ChatMessage("user", (ImagePart(image), TextPart("Describe."))),),
            sampling=SamplingParams(max_tokens=1, temperature=0.0, logprobs=5))
        return engine.complete_sync(request).logprobs[0].top

    assert first_logprobs(noise_image(7)) != first_logprobs(noise_image(8))


@pytest.mark.parametrize("arch", TEXT_ARCHS)
def test_text_parity(arch, engine_for, tiny_model):
    import mlx_lm

    engine = engine_for(arch)
    messages = [{"role": "user", "content": "Tell me a story."}]
    ours = engine_tokens(engine, [TextPart("Tell me a story.")])
    model, tokenizer = mlx_lm.load(str(tiny_model(arch)))
    prompt = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    theirs = [r.token for r in mlx_lm.stream_generate(model, tokenizer, prompt,
                                                      max_tokens=MAX_TOKENS)]
    eos = set(tokenizer.eos_token_ids)
    theirs = [t for t in theirs if t not in eos][:MAX_TOKENS]
    assert list(ours) == theirs
    assert len(ours) > 0


def test_media_markers_in_text_are_not_taken_for_images(engine_for):
    """A user (or an echoed reply) typing the image placeholder must not break the
    request nor be read as a picture."""
    engine = engine_for("qwen2_vl")
    marker = "<|vision_start|><|image_pad|><|vision_end|>"
    parts = [ImagePart(noise_image(1)), TextPart(f"What is {marker} this <|video_pad|>?")]
    clean = [ImagePart(noise_image(1)), TextPart("What is  this ?")]
    assert engine_tokens(engine, parts) == engine_tokens(engine, clean)
