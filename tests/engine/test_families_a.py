"""The correctness oracle on LLaVA, LLaVA-NeXT, PaliGemma, Idefics3, SmolVLM, Pixtral and
Mistral 3: greedy tokens through our engine equal ``mlx_vlm.generate`` on the same rendered
prompt and images, alone, with other requests in flight, and on a follow-up turn."""

from __future__ import annotations

import asyncio

import pytest

from tests.conftest import engine_pool
from tests.engine.test_parity import noise_image, oracle_vlm_tokens, template_parts
from vllm_mlx.engine import ChatMessage, Engine, GenerationRequest, ImagePart, SamplingParams
from vllm_mlx.engine import TextPart as T

MAX_TOKENS = 10
ARCHS = ("llava", "llava_next", "paligemma", "idefics3", "smolvlm", "pixtral", "mistral3")
# mlx-vlm reads one image per prompt for these (SINGLE_IMAGE_ONLY_MODELS).
SINGLE_IMAGE = frozenset({"llava_next", "paligemma"})
CASES = {
    "text": lambda: [T("Say something.")],
    "image": lambda: [ImagePart(noise_image(1)), T("What is in this image?")],
    "two_images": lambda: [ImagePart(noise_image(2)), ImagePart(noise_image(3, (48, 64))),
                           T("Compare these images.")],
}


def request(messages: list[ChatMessage], **sampling) -> GenerationRequest:
    params = SamplingParams(max_tokens=MAX_TOKENS, temperature=0.0, **sampling)
    return GenerationRequest(messages=tuple(messages), sampling=params)


def user(parts) -> list[ChatMessage]:
    return [ChatMessage("user", tuple(parts))]


@pytest.fixture(scope="module")
def oracle(tiny_model):
    """mlx-vlm's own model and processor per arch, loaded once."""
    import mlx_vlm

    from vllm_mlx.engine.processor_fixes import fix_processor

    loaded: dict[str, tuple] = {}

    def get(arch: str):
        if arch not in loaded:
            model, processor = mlx_vlm.load(str(tiny_model(arch)))
            # WORKAROUND, the same the engine applies at load: mlx-vlm 0.7.10's
            # LlavaProcessor passes `padding` to transformers 5's image processor.
            loaded[arch] = (model, fix_processor(processor))
        return loaded[arch]

    return get


def oracle_chat(model, processor, messages: list[ChatMessage]) -> list[int]:
    """mlx-vlm's tokens for a whole conversation (the last turn's parts carry no media)."""
    import mlx_vlm
    from mlx_vlm.prompt_utils import get_chat_template

    rendered = [{"role": m.role, "content": template_parts(m.content)} for m in messages]
    prompt = get_chat_template(processor, rendered, True)
    images = [p.image for m in messages for p in m.content if isinstance(p, ImagePart)]
    result = mlx_vlm.generate(model, processor, prompt, image=images or None,
                              max_tokens=MAX_TOKENS, temperature=0.0)
    return list(result.token_ids or [])


def first_logprobs(engine: Engine, image) -> tuple:
    """The first token's top log-probs for the image and "Describe."."""
    parts = [ImagePart(image), T("Describe.")]
    return engine.complete_sync(request(user(parts), logprobs=5)).logprobs[0].top


def oracle_tokens(oracle, arch: str, parts) -> list[int]:
    model, processor = oracle(arch)
    return oracle_vlm_tokens(model, processor, parts)[:MAX_TOKENS]


def cases_for(arch: str) -> list[str]:
    return [c for c in sorted(CASES) if not (c == "two_images" and arch in SINGLE_IMAGE)]


@pytest.mark.parametrize("arch,case", [(a, c) for a in ARCHS for c in cases_for(a)])
def test_single_request_matches_mlx_vlm(arch, case, engine_for, oracle):
    parts = CASES[case]()
    ours = engine_for(arch).complete_sync(request(user(parts))).token_ids
    assert list(ours) == oracle_tokens(oracle, arch, parts)
    assert len(ours) > 0


@pytest.mark.parametrize("arch", ARCHS)
def test_concurrent_requests_match_their_single_runs(arch, engine_for):
    """Different images and prompt lengths decoded in one batch: each request's tokens and
    log-probs equal its own run (a padding mask missed shows in the log-probs first)."""
    engine = engine_for(arch)
    requests = [request(user([ImagePart(noise_image(10 + i, (56 + 8 * i, 48))),
                              T("Describe it" + " in detail" * 3 * i)]), logprobs=2)
                for i in range(3)]
    requests.append(request(user([T("Hi")]), logprobs=2))
    alone = [engine.complete_sync(r) for r in requests]

    async def together():
        return await asyncio.gather(*(engine.complete(r) for r in requests))

    batched = asyncio.run(together())
    assert [r.token_ids for r in batched] == [r.token_ids for r in alone]
    for one, many in zip(alone, batched):  # batched matmuls may differ in the last bits
        assert [lp.logprob for lp in many.logprobs] == pytest.approx(
            [lp.logprob for lp in one.logprobs], abs=1e-3)


@pytest.fixture(scope="module")
def cached_engines(tiny_model):
    """This module's own engines: their prefix caches hold only its conversations."""
    with engine_pool(tiny_model) as get:
        yield get


@pytest.mark.parametrize("arch", ARCHS)
def test_follow_up_turn_matches_mlx_vlm(arch, cached_engines, oracle):
    """The first turn fills the prefix cache; the follow-up (which may be served from
    it) must still equal mlx-vlm's tokens for the whole conversation."""
    engine = cached_engines(arch)
    first = user([ImagePart(noise_image(21)), T("What is this?")])
    engine.complete_sync(request(first))
    follow = first + [ChatMessage("assistant", (T("It is noise."),)),
                      ChatMessage("user", (T("And the colours?"),))]
    ours = engine.complete_sync(request(follow)).token_ids
    model, processor = oracle(arch)
    assert list(ours) == oracle_chat(model, processor, follow)


@pytest.mark.parametrize("arch", ARCHS)
def test_image_content_reaches_the_model(arch, engine_for):
    """Different images must change the first token's distribution, or parity above would
    hold without the image."""
    engine = engine_for(arch)
    assert first_logprobs(engine, noise_image(7)) != first_logprobs(engine, noise_image(8))


def test_llava_processor_fix_keeps_the_processors_result(oracle):
    """The workaround only drops ``padding`` on its way to the image processor: pixels are
    the image processor's own, and each image becomes 16 ``<image>`` tokens."""
    import numpy as np

    from vllm_mlx.engine.processor_fixes import ImageKwargsFilter

    _, processor = oracle("llava")
    assert isinstance(processor.image_processor, ImageKwargsFilter)
    images = [noise_image(1), noise_image(2, (40, 64))]
    out = processor(images=images, text="USER: <image>\n<image>\nHi ASSISTANT:", padding=True)
    own = processor.image_processor(images)
    np.testing.assert_array_equal(np.asarray(out["pixel_values"]),
                                  np.asarray(own["pixel_values"]))
    image_id = processor.tokenizer.convert_tokens_to_ids("<image>")
    assert int((np.asarray(out["input_ids"]) == image_id).sum()) == 2 * 16


@pytest.mark.parametrize("arch", ["paligemma", "llava_next"])
def test_prompts_longer_than_a_chunk_match_mlx_vlm(arch, tiny_model, oracle):
    """PaliGemma's prompt still goes in one pass when it spans many chunks; LLaVA-NeXT's
    chunks follow its embeddings, which outnumber its token ids."""
    parts = [ImagePart(noise_image(5)), T("What is in this image? Tell me everything.")]
    engine = Engine.start(str(tiny_model(arch)), prefill_chunk=8, prefix_cache_bytes=0)
    try:
        ours = engine.complete_sync(request(user(parts))).token_ids
    finally:
        engine.shutdown()
    assert list(ours) == oracle_tokens(oracle, arch, parts)


def test_a_second_image_is_refused_where_the_family_reads_only_one(engine_for):
    """mlx-vlm's LLaVA-NeXT encodes the first image only: a second one is a 400, never
    silently dropped; /v1/models says so (max_images_per_request)."""
    from vllm_mlx.engine import UnsupportedInput

    engine = engine_for("llava_next")
    assert engine.model.capabilities.max_images == 1
    two = [ImagePart(noise_image(1)), ImagePart(noise_image(2)), T("Compare them.")]
    with pytest.raises(UnsupportedInput, match="at most 1 image"):
        engine.complete_sync(request(user(two)))
    assert engine_for("llava").model.capabilities.max_images is None
