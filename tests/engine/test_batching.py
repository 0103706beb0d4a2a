"""Continuous batching: outputs equal unbatched outputs token for token, requests join
mid-flight, cancellation frees the slot, and a full queue is refused."""

from __future__ import annotations

import asyncio
import dataclasses
import time

import pytest

from tests.engine.test_parity import noise_clip, noise_image
from vllm_mlx.engine import (
    ChatMessage,
    Engine,
    EngineOverloaded,
    GenerationRequest,
    ImagePart,
    SamplingParams,
    TextPart,
    VideoPart,
)


def request(parts, **sampling) -> GenerationRequest:
    return GenerationRequest(messages=(ChatMessage("user", tuple(parts)),),
                             sampling=SamplingParams(**sampling))


def mixed_requests(video: bool) -> list[GenerationRequest]:
    requests = [
        request([TextPart("Tell me a story.")], max_tokens=12),
        request([ImagePart(noise_image(1)), TextPart("What is this?")], max_tokens=5),
        request([TextPart("Hi")], max_tokens=9, temperature=0.9, top_p=0.9, seed=7),
        request([ImagePart(noise_image(2)), ImagePart(noise_image(3, (40, 64))),
                 TextPart("Compare.")], max_tokens=7, top_k=5, temperature=0.7, seed=3),
        request([TextPart("Stop early please")], max_tokens=10, repetition_penalty=1.3),
        request([TextPart("Count")], max_tokens=6, ignore_eos=True, logprobs=2),
    ]
    if video:
        requests.append(request([VideoPart(noise_clip(4)), TextPart("What happens?")],
                                max_tokens=8))
    return requests


async def run_staggered(engine: Engine, requests: list[GenerationRequest]) -> list:
    """Start requests a few tokens apart, so later ones join a running batch."""
    async def one(index: int, req: GenerationRequest):
        await asyncio.sleep(0.01 * index)
        return await engine.complete(req)

    return await asyncio.gather(*(one(i, r) for i, r in enumerate(requests)))


@pytest.mark.parametrize("arch", ["qwen2_vl", "qwen3_vl", "gemma3", "qwen3"])
def test_batched_equals_unbatched(arch, engine_for):
    engine = engine_for(arch)
    requests = mixed_requests(video=engine.model.capabilities.native_video)
    if not engine.model.is_vision:
        requests = [r for r in requests
                    if all(isinstance(p, TextPart) for m in r.messages for p in m.content)]
    alone = [engine.complete_sync(r) for r in requests]
    steps_before = engine.stats["decode_steps"]
    together = asyncio.run(run_staggered(engine, requests))
    for single, batched in zip(alone, together):
        assert batched.token_ids == single.token_ids
        assert batched.text == single.text
        assert batched.finish_reason == single.finish_reason
    tokens = sum(r.completion_tokens for r in together)
    assert engine.stats["decode_steps"] - steps_before < tokens  # steps were shared


def test_cancel_frees_the_slot(engine_for):
    engine = engine_for("qwen2_vl")
    cancelled_before = engine.stats["requests_cancelled"]
    generated_before = engine.stats["generated_tokens"]

    async def start_then_leave():
        stream = engine.generate(request([TextPart("Go on forever")], max_tokens=2000,
                                         ignore_eos=True))
        seen = 0
        async for _chunk in stream:
            seen += 1
            if seen == 3:
                break
        await stream.aclose()

    asyncio.run(start_then_leave())
    follow_up = engine.complete_sync(request([TextPart("Next")], max_tokens=3))
    assert follow_up.completion_tokens <= 3
    assert engine.stats["requests_cancelled"] == cancelled_before + 1
    # the cancelled request's tokens count too (only finished requests' did)
    assert engine.stats["generated_tokens"] >= generated_before + 3 + follow_up.completion_tokens
    deadline = time.monotonic() + 5  # the gauge is set when the owner's step ends
    while engine.stats["batch_size"] and time.monotonic() < deadline:
        time.sleep(0.01)
    assert engine.stats["batch_size"] == 0


def test_full_queue_is_refused(tiny_model):
    engine = Engine.start(str(tiny_model("qwen3")), max_waiting=1, max_batch=1)
    try:
        async def flood():
            async def one():
                return await engine.complete(request([TextPart("x")], max_tokens=200,
                                                     ignore_eos=True))
            return await asyncio.gather(*(one() for _ in range(6)), return_exceptions=True)

        results = asyncio.run(flood())
        refused = [r for r in results if isinstance(r, EngineOverloaded)]
        done = [r for r in results if not isinstance(r, BaseException)]
        assert refused and done
        assert all(r.completion_tokens == 200 for r in done)
    finally:
        engine.shutdown()


def test_long_prompt_is_prefilled_in_chunks(tiny_model):
    engine = Engine.start(str(tiny_model("qwen3")), prefill_chunk=16)
    try:
        long = request([TextPart("word " * 300)], max_tokens=4)
        result = engine.complete_sync(long)
        reference = Engine.start(str(tiny_model("qwen3")), prefill_chunk=4096)
        try:
            assert reference.complete_sync(long).token_ids == result.token_ids
        finally:
            reference.shutdown()
    finally:
        engine.shutdown()


def test_short_request_is_not_stuck_behind_a_long_prefill(tiny_model):
    """Prefill picks the prompt closest to done: a short request that arrives while a
    long prompt is being prefilled gets its first token before the long one does."""
    engine = Engine.start(str(tiny_model("qwen3")), prefill_chunk=8)
    try:  # 250 chunks: far longer than the short request's 50 ms head start, even loaded
        long = request([TextPart("word " * 2000)], max_tokens=2)
        short = request([TextPart("Hi")], max_tokens=2)
        firsts: dict[str, float] = {}

        async def timed(name: str, req: GenerationRequest, delay: float) -> None:
            await asyncio.sleep(delay)
            async for _ in engine.generate(req):
                firsts.setdefault(name, time.perf_counter())

        async def both() -> None:
            await asyncio.gather(timed("long", long, 0.0), timed("short", short, 0.05))

        asyncio.run(both())
        assert firsts["short"] < firsts["long"]
    finally:
        engine.shutdown()


@pytest.mark.parametrize("arch", ["qwen3", "llama"])
def test_prompts_arriving_together_are_prefilled_together(arch, engine_for):
    """Text prompts of different lengths that arrive together are prefilled in one
    forward pass (right-padded) and still give their unbatched greedy tokens."""
    engine = engine_for(arch)
    prompts = ["Hi", "Tell me a long story about a cat and a dog.", "Count to ten",
               "Why is the sky blue? Explain it to a child in a few sentences."]
    requests = [dataclasses.replace(request([TextPart(p)], max_tokens=6, ignore_eos=True),
                                    cache_prefix=False)  # no prefix hits: prefill it all
                for p in prompts]
    alone = [engine.complete_sync(r) for r in requests]
    before = engine.stats

    async def together():
        return await asyncio.gather(*(engine.complete(r) for r in requests))

    results = asyncio.run(together())
    after = engine.stats
    assert [r.token_ids for r in results] == [r.token_ids for r in alone]
    assert after["prefill_group_rows"] - before["prefill_group_rows"] >= 2
    assert after["prefill_groups"] > before["prefill_groups"]


def test_a_job_abandoned_in_the_queue_frees_its_waiting_slot(tiny_model):
    """A caller that left while its job waited (the batch full) kept the waiting slot until
    the batch had room, so new requests were refused as if the queue were full."""
    engine = Engine.start(str(tiny_model("qwen3")), max_waiting=1, max_batch=1)
    try:
        async def scenario() -> None:
            running = engine.submit([request([TextPart("x")], max_tokens=3000,
                                             ignore_eos=True)])
            await running.accepted()
            queued = engine.submit([request([TextPart("y")], max_tokens=2)])
            waiter = asyncio.ensure_future(queued.accepted())
            await asyncio.sleep(0.05)
            cancelled = engine.stats["requests_cancelled"]
            waiter.cancel()  # its client leaves while it waits
            await asyncio.gather(waiter, return_exceptions=True)
            deadline = time.monotonic() + 1.0  # the long request runs for several seconds
            while True:
                try:
                    third = engine.submit([request([TextPart("z")], max_tokens=2)])
                    break
                except EngineOverloaded:
                    assert time.monotonic() < deadline, "the abandoned job still holds the slot"
                    await asyncio.sleep(0.01)
            assert engine.stats["requests_cancelled"] == cancelled + 1
            del running, third  # leaving them cancels them

        asyncio.run(scenario())
    finally:
        engine.shutdown()
