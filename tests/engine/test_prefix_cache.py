"""Prefix cache: hits give the same tokens as misses, follow-ups about the same image
skip re-encoding it, and a different image never reuses another image's KV."""

from __future__ import annotations

import pytest

from tests.engine.test_parity import noise_image
from vllm_mlx.engine import ChatMessage, Engine, GenerationRequest, ImagePart, SamplingParams
from vllm_mlx.engine import TextPart as T


def conversation(image, *turns: str, answer: str = "It is noise.") -> GenerationRequest:
    messages = [ChatMessage("user", (ImagePart(image), T(turns[0])))]
    for turn in turns[1:]:
        messages += [ChatMessage("assistant", (T(answer),)), ChatMessage("user", (T(turn),))]
    return GenerationRequest(messages=tuple(messages),
                             sampling=SamplingParams(max_tokens=8))


@pytest.fixture(scope="module", params=["qwen2_vl", "qwen3_vl"])
def engines(request, tiny_model):
    path = str(tiny_model(request.param))
    cached, plain = Engine.start(path), Engine.start(path, prefix_cache_bytes=0)
    yield cached, plain
    cached.shutdown()
    plain.shutdown()


def test_follow_up_about_same_image_hits_and_matches(engines):
    cached, plain = engines
    image = noise_image(31)
    first = conversation(image, "What is this?")
    follow = conversation(image, "What is this?", "And the colours?")
    assert cached.complete_sync(first).token_ids == plain.complete_sync(first).token_ids
    before = dict(cached.stats)
    assert cached.complete_sync(follow).token_ids == plain.complete_sync(follow).token_ids
    assert cached.stats["prefix_cache_hits"] == before["prefix_cache_hits"] + 1
    assert cached.stats["vision_encodes_skipped"] == before["vision_encodes_skipped"] + 1
    reused = before["prefix_cache_tokens_reused"]
    assert cached.stats["prefix_cache_tokens_reused"] - reused > 20  # the image's tokens


def test_different_image_same_tokens_is_not_reused_past_media(engines):
    cached, plain = engines
    a = conversation(noise_image(41), "Describe it.")
    b = conversation(noise_image(42), "Describe it.")  # same token ids, other pixels
    cached.complete_sync(a)
    assert cached.complete_sync(b).token_ids == plain.complete_sync(b).token_ids


def test_text_prompt_after_image_prompt_matches(engines):
    cached, plain = engines
    cached.complete_sync(conversation(noise_image(51), "Hello there"))
    text = GenerationRequest(messages=(ChatMessage("user", (T("Hello there friend"),)),),
                             sampling=SamplingParams(max_tokens=8))
    assert cached.complete_sync(text).token_ids == plain.complete_sync(text).token_ids


# -- the media rule, on token ids alone (no model) --------------------------------------

def _store(cache, tokens, media):
    import mlx.core as mx

    class Layer:  # a plain KVCache's shape, filled with zeros
        def __init__(self, n):
            self.keys = self.values = mx.zeros((1, 1, n, 2))
            self.offset = n

    cache.store(tokens, [Layer(len(tokens))], media, None)


@pytest.mark.parametrize("positions, expected", [
    # known placeholder id 7: reuse stops where the media begin
    ("known", 10),
    # Phi-3-vision style: negative ids are media
    ("negative", 10),
    # placeholders not known: different media, nothing is reused
    ("unknown", None),
])
def test_different_media_stop_reuse_at_the_first_placeholder(positions, expected):
    from vllm_mlx.engine.prefix_cache import MediaPositions, PrefixCache

    rules = {"known": MediaPositions(frozenset({7})),
             "negative": MediaPositions(frozenset(), negative=True),
             "unknown": MediaPositions(None)}
    media_id = -1 if positions == "negative" else 7
    text = list(range(20, 30))
    prompt = text + [media_id] * 4 + [40, 41, 42]
    cache = PrefixCache(1 << 20, rules[positions])
    _store(cache, prompt + [50], ("image-a",))
    hit = cache.lookup(prompt, ("image-b",))
    assert (hit.length if hit else None) == expected
    same = cache.lookup(prompt, ("image-a",))
    assert same is not None and same.length == len(prompt) - 1
    assert cache.suffix_has_media(prompt, 14, ("image-a",)) is (positions == "unknown")
    assert cache.suffix_has_media(prompt, 5, ("image-a",))


def test_raw_prompt_media_are_part_of_the_key():
    from vllm_mlx.engine.prefix_cache import media_hashes

    first = GenerationRequest(prompt="<image> hi", images=(noise_image(1),))
    second = GenerationRequest(prompt="<image> hi", images=(noise_image(2),))
    assert media_hashes(first) != media_hashes(second)
    assert len(media_hashes(first)) == 1
