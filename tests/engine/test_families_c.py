"""Molmo, Phi-3-vision and DeepSeek-VL2 through the engine give mlx-vlm's own greedy
tokens, alone and side by side.

The oracle is mlx-vlm's generate CLI path: ``apply_chat_template(processor, config, text,
num_images=n)`` (the family's message formatting: DeepSeek-VL2 ``<image>\\n``, Phi-3-vision
``<|image_1|>``, Molmo plain text) and ``mlx_vlm.generate``. The three families' chat
templates take string content only, so the engine must use that path too.

Phi-3-vision carries mlx-vlm's full-size CLIP ViT-L/14 tower: its cases are marked slow.
"""

from __future__ import annotations

import asyncio

import pytest

from tests.engine.test_parity import MAX_TOKENS, engine_tokens, greedy, noise_image
from vllm_mlx.engine import ChatMessage, GenerationRequest, ImagePart, SamplingParams, TextPart
from vllm_mlx.engine.processor_fixes import fix_inputs

SLOW = pytest.mark.slow
ARCHS = ["molmo", "deepseek_vl_v2", pytest.param("phi3_v", marks=SLOW)]
MULTI_IMAGE_ARCHS = ["deepseek_vl_v2", pytest.param("phi3_v", marks=SLOW)]  # Molmo: one
DESCRIBED = ((20, (72, 56)), (21, (72, 56)), (22, (72, 56)), (23, (40, 64)))

# Case name -> (text, images as (seed, size)); the oracle computes them all in one process.
CASES: dict[str, tuple[str, list[tuple[int, tuple[int, int]]]]] = {
    "text": ("Say something.", []),
    "image": ("What is in this image?", [(1, (72, 56))]),
    "two_images": ("Compare these images.", [(2, (72, 56)), (3, (48, 64))]),
    **{f"describe_{seed}": ("Describe.", [(seed, size)]) for seed, size in DESCRIBED},
}

def oracle_tokens(model, processor, text: str, images: list) -> list[int]:
    """mlx-vlm's tokens, from its own template path, processor inputs and generate.

    WORKAROUND, the one the engine applies (``processor_fixes.fix_inputs``): mlx-vlm
    0.7.10's DeepSeek-VL2 reads ``images_spatial_crop`` past its end (no bounds check in
    MLX), so without it its own tokens vary with whatever memory follows the array."""
    import mlx.core as mx
    import mlx_vlm
    from mlx_vlm.prompt_utils import apply_chat_template
    from mlx_vlm.utils import prepare_inputs, should_add_special_tokens

    prompt = apply_chat_template(processor, model.config, text, num_images=len(images))
    inputs = dict(prepare_inputs(
        processor, images=images or None, prompts=prompt,
        image_token_index=getattr(model.config, "image_token_index", None),
        add_special_tokens=should_add_special_tokens(model.config.model_type, processor)))
    inputs = fix_inputs(inputs)
    mx.eval([v for v in inputs.values() if isinstance(v, mx.array)])
    result = mlx_vlm.generate(model, processor, prompt, input_ids=inputs.pop("input_ids"),
                              pixel_values=inputs.pop("pixel_values", None),
                              mask=inputs.pop("attention_mask", None), **inputs,
                              max_tokens=MAX_TOKENS, temperature=0.0)
    return list(result.token_ids or [])


@pytest.fixture(scope="module")
def oracle(tiny_model):
    """arch -> case name -> mlx-vlm's tokens (computed once per arch)."""
    import mlx_vlm

    found: dict[str, dict[str, list[int]]] = {}

    def get(arch: str) -> dict[str, list[int]]:
        if arch not in found:
            model, processor = mlx_vlm.load(str(tiny_model(arch)))
            most = 1 if arch == "molmo" else 2
            found[arch] = {
                name: oracle_tokens(model, processor, text,
                                    [noise_image(seed, size) for seed, size in images])
                for name, (text, images) in CASES.items() if len(images) <= most}
        return found[arch]

    return get


def parity(arch: str, case: str, engine_for, oracle) -> None:
    text, images = CASES[case]
    parts = [ImagePart(noise_image(seed, size)) for seed, size in images] + [TextPart(text)]
    ours = engine_tokens(engine_for(arch), parts)
    assert 0 < len(ours) <= MAX_TOKENS
    assert list(ours) == oracle(arch)[case]


@pytest.mark.parametrize("arch", ARCHS)
def test_text_parity(arch, engine_for, oracle):
    parity(arch, "text", engine_for, oracle)


@pytest.mark.parametrize("arch", ARCHS)
def test_image_parity(arch, engine_for, oracle):
    parity(arch, "image", engine_for, oracle)


@pytest.mark.parametrize("arch", MULTI_IMAGE_ARCHS)
def test_two_images_parity(arch, engine_for, oracle):
    parity(arch, "two_images", engine_for, oracle)


@pytest.mark.parametrize("arch", ARCHS)
def test_image_content_reaches_the_model(arch, engine_for):
    engine = engine_for(arch)

    def first_logprobs(image):
        request = GenerationRequest(
            messages=(ChatMessage("user", (ImagePart(image), TextPart("Describe."))),),
            sampling=SamplingParams(max_tokens=1, temperature=0.0, logprobs=5))
        return engine.complete_sync(request).logprobs[0].top

    assert first_logprobs(noise_image(7)) != first_logprobs(noise_image(8))


def _request(image) -> GenerationRequest:
    return GenerationRequest(messages=(ChatMessage("user", (ImagePart(image),
                                                            TextPart("Describe."))),),
                             sampling=greedy())


@pytest.mark.parametrize("arch", ARCHS)
def test_different_images_at_once_give_their_single_run_tokens(arch, engine_for, oracle):
    """Same-sized images give identical prompt ids: only the media tell them apart, so
    neither a shared batch nor a reused prompt prefix may mix them up. Each request must
    give mlx-vlm's tokens for its own image, side by side and again one by one (when the
    prefix cache holds the others' prompts)."""
    engine = engine_for(arch)
    expected = [tuple(oracle(arch)[f"describe_{seed}"]) for seed, _ in DESCRIBED]
    assert len(set(expected)) > 1  # the images do matter
    requests = [_request(noise_image(seed, size)) for seed, size in DESCRIBED]

    async def staggered():
        async def one(index: int, request: GenerationRequest):
            await asyncio.sleep(0.02 * index)
            return await engine.complete(request)

        return await asyncio.gather(*(one(i, r) for i, r in enumerate(requests)))

    together = asyncio.run(staggered())
    assert [r.token_ids for r in together] == expected
    again = [engine.complete_sync(r).token_ids for r in reversed(requests)]
    assert again == expected[::-1]
