"""Vision prompts that are ready together are prefilled in shared forward passes, and
give the tokens each gives alone: cold prompts, prompts of several chunks (rows that
take their own caches back between chunks), text follow-ups on a reused prefix, and
Qwen3-VL's deepstack features. Models whose inputs cannot be batched prefill alone."""

from __future__ import annotations

import pytest

from tests.engine.test_batching import request
from tests.engine.test_parity import noise_clip, noise_image
from vllm_mlx.engine import ChatMessage, GenerationChunk, ImagePart, TextPart, VideoPart
from vllm_mlx.engine.loader import load_model
from vllm_mlx.engine.scheduler import Scheduler
from vllm_mlx.engine.types import GenerationRequest


def run(scheduler: Scheduler, requests: list[GenerationRequest]) -> list[tuple[int, ...]]:
    """Add every request at once, step until all are done; each one's token ids."""
    tokens: list[list[int]] = [[] for _ in requests]

    def sink_for(i: int):
        def sink(item) -> None:
            assert not isinstance(item, Exception), item
            if isinstance(item, GenerationChunk):
                tokens[i].extend(item.token_ids)
        return sink

    for i, req in enumerate(requests):
        scheduler.add(req, sink_for(i), lambda: False)
    while scheduler.has_work:
        scheduler.step()
    return [tuple(t) for t in tokens]


def media_requests() -> list[GenerationRequest]:
    return [
        request([ImagePart(noise_image(1)), TextPart("What is this?")], max_tokens=6),
        request([ImagePart(noise_image(2, (40, 64))), TextPart("Describe it at length. " * 4)],
                max_tokens=5, temperature=0.8, seed=5),
        request([VideoPart(noise_clip(3)), TextPart("What happens?")], max_tokens=6),
        request([TextPart("Only words here, no picture at all.")], max_tokens=4),
        request([ImagePart(noise_image(4)), ImagePart(noise_image(5)), TextPart("Compare.")],
                max_tokens=6, ignore_eos=True),
    ]


@pytest.fixture(scope="module")
def loaded_models(tiny_model):
    models: dict[str, object] = {}

    def get(arch: str):
        if arch not in models:
            models[arch] = load_model(str(tiny_model(arch)))
        return models[arch]
    return get


def scheduler_for(loaded, chunk: int, prefix: bool = False) -> Scheduler:
    return Scheduler(loaded, prefill_chunk=chunk,
                     prefix_cache_bytes=(64 << 20) if prefix else 0)


@pytest.mark.parametrize("arch", ["qwen2_vl", "qwen3_vl"])
@pytest.mark.parametrize("chunk", [256, 16])
def test_grouped_prefill_gives_the_tokens_of_prefill_alone(arch, chunk, loaded_models):
    loaded = loaded_models(arch)
    requests = media_requests()
    alone = [run(scheduler_for(loaded, chunk), [r])[0] for r in requests]
    together = scheduler_for(loaded, chunk)
    assert run(together, requests) == alone
    assert together.stats.prefill_groups > 0
    assert together.stats.prefill_group_rows >= 2 * together.stats.prefill_groups


def follow_up(req: GenerationRequest, answer: str, question: str) -> GenerationRequest:
    turns = (*req.messages, ChatMessage("assistant", (TextPart(answer),)),
             ChatMessage("user", (TextPart(question),)))
    return GenerationRequest(messages=turns, sampling=req.sampling)


@pytest.mark.parametrize("arch", ["qwen2_vl", "qwen3_vl"])
def test_follow_ups_on_reused_prefixes_group_with_cold_prompts(arch, loaded_models):
    """A text suffix after a cached prefix has no position ids of its own: its positions
    follow its cache and its mRoPE delta."""
    loaded = loaded_models(arch)
    first = media_requests()[:3]
    later = [follow_up(r, "It is noise, mostly grey.", "And what colour is the corner? " * 3)
             for r in first] + [media_requests()[4]]

    def after_warm_up() -> Scheduler:
        scheduler = scheduler_for(loaded, 16, prefix=True)
        for req in first:
            run(scheduler, [req])
        return scheduler

    alone = [run(after_warm_up(), [req])[0] for req in later]
    together = after_warm_up()
    groups_before = together.stats.prefill_groups
    skipped_before = together.stats.vision_encodes_skipped
    assert run(together, later) == alone
    assert together.stats.vision_encodes_skipped - skipped_before == len(first)
    assert together.stats.prefill_groups > groups_before


def test_models_with_other_inputs_prefill_alone(loaded_models):
    """Gemma 3 gives its language model a bidirectional mask over image tokens, which
    the grouped forward does not batch."""
    scheduler = scheduler_for(loaded_models("gemma3"), 16)
    requests = [r for r in media_requests() if not any(
        isinstance(p, VideoPart) for m in r.messages for p in m.content)]
    results = run(scheduler, requests)
    assert all(results)
    assert scheduler.stats.prefill_groups == 0
