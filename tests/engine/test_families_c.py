"""Molmo, Phi-3-vision and DeepSeek-VL2 through the engine give mlx-vlm's own greedy
tokens, alone and side by side.

The oracle is :func:`tests.families.oracle.library_tokens`: these families' chat templates
take string content only, so it renders the prompt as mlx-vlm's generate CLI does
(``apply_chat_template`` with the family's message formatting: DeepSeek-VL2 ``<image>\\n``,
Phi-3-vision ``<|image_1|>``, Molmo plain text); the engine must use that path too.

Phi-3-vision carries mlx-vlm's full-size CLIP ViT-L/14 tower: its cases are marked slow.
"""

from __future__ import annotations

import asyncio

import pytest

from tests.engine.test_families_a import first_logprobs
from tests.engine.test_parity import MAX_TOKENS, engine_tokens, greedy, noise_image
from tests.families.oracle import library_tokens
from vllm_mlx.engine import ChatMessage, GenerationRequest, ImagePart, TextPart

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


def case_parts(case: str) -> list:
    text, images = CASES[case]
    return [ImagePart(noise_image(seed, size)) for seed, size in images] + [TextPart(text)]


@pytest.fixture(scope="module")
def oracle(tiny_model):
    """arch -> case name -> mlx-vlm's tokens (computed once per arch)."""
    found: dict[str, dict[str, list[int]]] = {}

    def get(arch: str) -> dict[str, list[int]]:
        if arch not in found:
            most = 1 if arch == "molmo" else 2
            found[arch] = {
                case: library_tokens(arch, tiny_model(arch),
                                     (ChatMessage("user", tuple(case_parts(case))),),
                                     MAX_TOKENS)
                for case, (_, images) in CASES.items() if len(images) <= most}
        return found[arch]

    return get


def parity(arch: str, case: str, engine_for, oracle) -> None:
    ours = engine_tokens(engine_for(arch), case_parts(case))
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
    assert first_logprobs(engine, noise_image(7)) != first_logprobs(engine, noise_image(8))


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
