"""Text families beyond Qwen3 / Llama (MoE, sliding-window, linear-attention and
convolution hybrids) and quantized copies, held to the libraries' own greedy tokens:
one request, three at once with different prompts, and a follow-up turn (through the
prefix cache where the family's cache allows it); plus a 4-bit vision model with an image.
"""

from __future__ import annotations

import asyncio

import pytest

from tests.engine.test_parity import noise_image
from tests.families.oracle import library_tokens
from vllm_mlx.engine import ChatMessage, GenerationRequest, ImagePart, SamplingParams
from vllm_mlx.engine import TextPart as T
from vllm_mlx.engine.prefix_cache import cacheable
from vllm_mlx.engine.snapshots import snapshottable

MAX_TOKENS = 10
ARCHS = ["gemma3_text", "qwen3_moe", "gpt_oss", "qwen3_next", "lfm2", "qwen3:q4", "llama:q8"]
# Different lengths, one well past the sliding window (32) of gemma3_text / gpt_oss.
PROMPTS = (
    "Hi",
    "Tell me a story.",
    "Describe the road, the house, the tree and the red car you can see from the window "
    "of the white house, then say what color the dog is and how long the road is today.",
)


def conversation(*turns: str, answer: str = "") -> tuple[ChatMessage, ...]:
    messages = [ChatMessage("user", (T(turns[0]),))]
    for turn in turns[1:]:
        messages += [ChatMessage("assistant", (T(answer),)), ChatMessage("user", (T(turn),))]
    return tuple(messages)


def request(messages: tuple[ChatMessage, ...]) -> GenerationRequest:
    return GenerationRequest(messages=messages,
                             sampling=SamplingParams(max_tokens=MAX_TOKENS, temperature=0.0))


def oracle(arch: str, tiny_model, messages: tuple[ChatMessage, ...]) -> list[int]:
    return library_tokens(arch, tiny_model(arch), messages, MAX_TOKENS)


@pytest.mark.parametrize("arch", ARCHS)
def test_single_request_parity(arch, engine_for, tiny_model):
    messages = conversation("Tell me a story.")
    ours = list(engine_for(arch).complete_sync(request(messages)).token_ids)
    assert ours, "no tokens: the comparison would be vacuous"
    assert ours == oracle(arch, tiny_model, messages)


@pytest.mark.parametrize("arch", ARCHS)
def test_concurrent_requests_equal_single(arch, engine_for, tiny_model):
    engine = engine_for(arch)
    conversations = [conversation(p) for p in PROMPTS]

    async def together() -> list:
        return await asyncio.gather(*(engine.complete(request(c)) for c in conversations))

    steps_before = engine.stats["decode_steps"]
    batched = [list(r.token_ids) for r in asyncio.run(together())]
    assert engine.stats["decode_steps"] - steps_before < sum(map(len, batched))  # shared
    assert batched == [oracle(arch, tiny_model, c) for c in conversations]


@pytest.mark.parametrize("arch", ARCHS)
def test_follow_up_turn(arch, engine_for, tiny_model):
    engine = engine_for(arch)
    first = conversation("What should I cook tonight?")
    answer = engine.complete_sync(request(first)).text
    follow = conversation("What should I cook tonight?", "Something quicker, please.",
                          answer=answer)
    hits = engine.stats["prefix_cache_hits"]
    ours = list(engine.complete_sync(request(follow)).token_ids)
    assert ours == oracle(arch, tiny_model, follow)
    fresh = engine._scheduler.runner.new_cache()
    reusable = cacheable(fresh) or snapshottable(fresh)  # a cut prefix, or a whole snapshot
    assert engine.stats["prefix_cache_hits"] == hits + int(reusable)


def test_quantized_vision_model_with_an_image(engine_for, tiny_model):
    arch = "qwen2_vl:q4"
    messages = (ChatMessage("user", (ImagePart(noise_image(1)), T("What is in this image?"))),)
    ours = list(engine_for(arch).complete_sync(request(messages)).token_ids)
    assert ours
    assert ours == library_tokens(arch, tiny_model(arch), messages, MAX_TOKENS)
