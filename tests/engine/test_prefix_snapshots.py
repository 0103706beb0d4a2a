"""Whole-cache snapshots: prefix reuse for sliding-window and recurrent families.

Gemma 3 (text and vision) and gpt-oss have rotating caches, Qwen3-Next and LFM2 recurrent
ones: their follow-up turns reuse a snapshot taken at the end of the last prompt's
prefill or of its generation, and give the tokens the prefix cache off gives, and the
libraries' own. A snapshot is reused only whole: a prompt diverging inside it, or with
other media, gets nothing from it, while a plain-KV family still reuses the common part.
The rules, the copies' independence, the byte bound and the batch cache's extracted
rotating rows are also checked on cache objects alone.
"""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from mlx_lm.models.cache import ArraysCache, KVCache, RotatingKVCache

from tests.engine.test_parity import noise_image
from tests.families.oracle import library_tokens
from vllm_mlx.engine import ChatMessage, Engine, GenerationRequest, ImagePart, SamplingParams
from vllm_mlx.engine import TextPart as T
from vllm_mlx.engine._mlx import mx
from vllm_mlx.engine.prefix_cache import MediaPositions, PrefixCache, make_prefix_cache
from vllm_mlx.engine.snapshots import clone, snapshottable

FAMILIES = ["gemma3", "gemma3_text", "gpt_oss", "qwen3_next", "lfm2"]
MAX_TOKENS = 10
TURNS = ("What do you see here?", "Tell me more about it, please.",
         "And what would you do with it, tomorrow morning?")


@pytest.fixture(scope="module")
def engines(tiny_model):
    """(cached, plain) engines per arch: the prefix cache on, and off (the reference)."""
    made: dict[str, tuple[Engine, Engine]] = {}

    def get(arch: str) -> tuple[Engine, Engine]:
        if arch not in made:
            path = str(tiny_model(arch))
            made[arch] = (Engine.start(path), Engine.start(path, prefix_cache_bytes=0))
        return made[arch]

    yield get
    for pair in made.values():
        for engine in pair:
            engine.shutdown()


def first_message(arch: str, text: str, seed: int | None = 31) -> ChatMessage:
    parts = (ImagePart(noise_image(seed)), T(text)) if arch == "gemma3" and seed else (T(text),)
    return ChatMessage("user", parts)


def chat(messages: tuple[ChatMessage, ...], max_tokens: int = MAX_TOKENS) -> GenerationRequest:
    return GenerationRequest(messages=messages,
                             sampling=SamplingParams(max_tokens=max_tokens, temperature=0.0))


def raw(ids: list[int], max_tokens: int = MAX_TOKENS) -> GenerationRequest:
    return GenerationRequest(prompt_ids=tuple(ids),
                             sampling=SamplingParams(max_tokens=max_tokens, temperature=0.0))


# -- through the engine ------------------------------------------------------------------
@pytest.mark.parametrize("arch", FAMILIES)
def test_three_turns_reuse_and_match_the_library(arch, engines, tiny_model):
    cached, plain = engines(arch)
    assert cached._scheduler.prefix is not None and cached._scheduler.prefix.whole
    messages: tuple[ChatMessage, ...] = ()
    answer = ""
    for turn, text in enumerate(TURNS):
        asked = ChatMessage("user", (T(text),))
        messages += (ChatMessage("assistant", (T(answer),)), asked) if turn else (
            first_message(arch, text),)
        ours = cached.complete_sync(chat(messages))
        assert list(ours.token_ids) == list(plain.complete_sync(chat(messages)).token_ids)
        assert list(ours.token_ids) == library_tokens(arch, tiny_model(arch), messages,
                                                      MAX_TOKENS)
        assert (ours.cached_tokens > 0) is (turn > 0)
        answer = ours.text


@pytest.mark.parametrize("arch", FAMILIES)
def test_end_of_generation_snapshot_serves_prompt_and_answer(arch, engines):
    cached, plain = engines(arch)
    first = list(range(300, 340))  # past gpt-oss's and Gemma 3 text's 32-token windows
    answer = list(cached.complete_sync(raw(first, 24)).token_ids)
    follow = first + answer + list(range(400, 412))
    ours = cached.complete_sync(raw(follow))
    assert ours.token_ids == plain.complete_sync(raw(follow)).token_ids
    assert ours.cached_tokens >= len(first) + len(answer) - 1  # the last may not be fed


@pytest.mark.parametrize("arch", FAMILIES)
def test_follow_up_while_other_requests_run(arch, engines):
    cached, plain = engines(arch)
    first = (first_message(arch, TURNS[0], seed=33),)
    answer = cached.complete_sync(chat(first)).text
    follow = (*first, ChatMessage("assistant", (T(answer),)),
              ChatMessage("user", (T(TURNS[1]),)))
    others = [chat((first_message(arch, f"Count to {n}, slowly.", seed=None),), 30)
              for n in (5, 9)]

    async def together(engine: Engine) -> list:
        return await asyncio.gather(*(engine.complete(r) for r in (*others, chat(follow))))

    ours, reference = asyncio.run(together(cached)), asyncio.run(together(plain))
    assert [r.token_ids for r in ours] == [r.token_ids for r in reference]
    assert ours[-1].cached_tokens > 0


def test_different_image_in_follow_up_is_not_reused(engines):
    cached, plain = engines("gemma3")
    texts = ("Describe it.", "Tell me more about it, please.")
    cached.complete_sync(chat((first_message("gemma3", texts[0], seed=41),)))
    other = (first_message("gemma3", texts[0], seed=42),
             ChatMessage("assistant", (T("It is noise."),)), ChatMessage("user", (T(texts[1]),)))
    ours = cached.complete_sync(chat(other))
    assert ours.cached_tokens == 0  # the snapshot's image differs: nothing past it
    assert ours.token_ids == plain.complete_sync(chat(other)).token_ids


def test_new_image_in_follow_up_reuses_the_turn_before(engines, tiny_model):
    cached, plain = engines("gemma3")
    first = (first_message("gemma3", "Describe it.", seed=43),)
    answer = cached.complete_sync(chat(first)).text
    follow = (*first, ChatMessage("assistant", (T(answer),)),
              ChatMessage("user", (ImagePart(noise_image(44)), T("And this one?"))))
    ours = cached.complete_sync(chat(follow))
    assert ours.cached_tokens > 0
    assert ours.token_ids == plain.complete_sync(chat(follow)).token_ids
    assert list(ours.token_ids) == library_tokens("gemma3", tiny_model("gemma3"), follow,
                                                  MAX_TOKENS)


@pytest.mark.parametrize("arch", ["gpt_oss", "qwen3_next"])
def test_prompt_diverging_inside_a_snapshot_reuses_nothing(arch, engines):
    cached, plain = engines(arch)
    first = list(range(500, 540))
    cached.complete_sync(raw(first))
    diverged = first[:30] + list(range(600, 615))
    ours = cached.complete_sync(raw(diverged))
    assert ours.cached_tokens == 0
    assert ours.token_ids == plain.complete_sync(raw(diverged)).token_ids


def test_plain_kv_family_still_reuses_a_cut_prefix(engine_for):
    engine = engine_for("llama")
    assert not engine._scheduler.prefix.whole
    first = list(range(700, 740))
    engine.complete_sync(raw(first))
    assert engine.complete_sync(raw(first[:30] + list(range(800, 815)))).cached_tokens == 30


# -- on cache objects alone --------------------------------------------------------------
def rotating_and_recurrent(tokens: int, window: int = 8) -> list:
    """A prompt of 6 tokens then one at a time: the window is rotating in place."""
    rotating, kv, recurrent = RotatingKVCache(window), KVCache(), ArraysCache(1)
    rng = np.random.default_rng(tokens)
    keys = mx.array(rng.standard_normal((1, 2, tokens, 4)).astype(np.float32))
    for lo, hi in [(0, 6), *((i, i + 1) for i in range(6, tokens))]:
        rotating.update_and_fetch(keys[:, :, lo:hi], keys[:, :, lo:hi])
        kv.update_and_fetch(keys[:, :, lo:hi], keys[:, :, lo:hi])
    recurrent[0] = keys[:, :, -1]
    return [rotating, kv, recurrent]


def test_snapshots_are_served_only_whole_and_with_their_media():
    known = PrefixCache(1 << 20, MediaPositions(frozenset({7})), whole=True)
    prompt = list(range(20, 30)) + [7, 7, 40, 41]
    known.store(prompt, rotating_and_recurrent(len(prompt)), ("a",), None)
    hit = known.lookup(prompt + [50, 51], ("a",))
    assert hit is not None and hit.length == len(prompt)
    assert known.lookup(prompt + [50], ("a", "b")).length == len(prompt)  # a new image after
    assert known.lookup(prompt + [50], ("b",)) is None  # another image inside it
    assert known.lookup(prompt[:12] + [99, 50, 51], ("a",)) is None  # diverges inside
    assert known.lookup(prompt, ("a",)) is None  # no token left to compute
    unknown = PrefixCache(1 << 20, MediaPositions(None), whole=True)
    unknown.store(prompt, rotating_and_recurrent(len(prompt)), ("a",), None)
    assert unknown.lookup(prompt + [50], ("a", "b")) is None  # a medium could hide inside
    assert unknown.lookup(prompt + [50], ("a",)) is not None


def test_a_restored_snapshot_is_independent_of_the_stored_one():
    store = PrefixCache(1 << 20, MediaPositions(frozenset()), whole=True)
    tokens = list(range(12))
    live = rotating_and_recurrent(12)
    store.store(tokens, live, (), None)
    live[0].update_and_fetch(mx.ones((1, 2, 1, 4)), mx.ones((1, 2, 1, 4)))  # the source moves on
    hit = store.lookup(tokens + [1], ())
    first = store.restore(hit, [])
    for _ in range(5):  # rotates in place over the snapshot's slots
        first[0].update_and_fetch(mx.ones((1, 2, 1, 4)), mx.ones((1, 2, 1, 4)))
    first[2][0] = mx.zeros((1, 2, 4))
    second = store.restore(hit, [])
    fresh = rotating_and_recurrent(12)
    assert second[0].offset == 12 and second[1].offset == 12
    assert mx.array_equal(second[0]._temporal_order(second[0].keys),
                          fresh[0]._temporal_order(fresh[0].keys))
    assert mx.array_equal(second[2][0], fresh[2][0])


def test_snapshot_bytes_stay_within_the_budget():
    one = PrefixCache(1 << 20, MediaPositions(frozenset()), whole=True)
    one.store(list(range(16)), rotating_and_recurrent(16), (), None)
    size = one.nbytes
    bounded = PrefixCache(2 * size + size // 2, MediaPositions(frozenset()), whole=True)
    for start in range(4):
        bounded.store(list(range(start, start + 16)), rotating_and_recurrent(16), (), None)
        assert bounded.nbytes <= bounded.max_bytes
    assert len(bounded.entries) == 2
    bounded.store(list(range(3, 19)), rotating_and_recurrent(16), (), None)  # the same again
    assert len(bounded.entries) == 2 and bounded.nbytes == 2 * size


def test_which_caches_get_snapshots():
    assert make_prefix_cache(1 << 20, True, [KVCache()], MediaPositions(None)).whole is False
    assert make_prefix_cache(1 << 20, True, rotating_and_recurrent(9), MediaPositions(None)).whole
    assert make_prefix_cache(1 << 20, False, [RotatingKVCache(4)], MediaPositions(None)) is None
    assert not snapshottable([ArraysCache(1)])  # nothing counts its tokens


def test_a_row_extracted_from_a_rotated_batch_attends_like_its_own_cache():
    """BatchRotatingKVCache.extract: left padding and rotation undone, the same window."""
    window, rng = 8, np.random.default_rng(0)

    def chunk(n: int, rows: int = 1) -> mx.array:
        return mx.array(rng.standard_normal((rows, 2, n, 4)).astype(np.float32))

    own = [RotatingKVCache(window), RotatingKVCache(window)]
    for cache, n in zip(own, (13, 3)):  # one past its window, one short of it
        prompt = chunk(n)
        cache.update_and_fetch(prompt, prompt)
    batch = RotatingKVCache.merge(clone(own))
    for _ in range(11):  # the batch rotates; the short row's left padding goes with it
        step = chunk(1, rows=2)
        for i, cache in enumerate(own):
            cache.update_and_fetch(step[i:i + 1], step[i:i + 1])
        batch.update_and_fetch(step, step)
    query, more = chunk(3), chunk(3)
    for i, cache in enumerate(own):
        row = batch.extract(i)
        assert row.offset == cache.offset == (24, 14)[i]
        outputs = []
        for single in (cache, row):
            keys, values = single.update_and_fetch(more, more)
            mask = single.make_mask(3, return_array=True)
            outputs.append(mx.fast.scaled_dot_product_attention(query, keys, values,
                                                                scale=0.5, mask=mask))
        assert mx.allclose(outputs[0], outputs[1], atol=1e-6)
