"""KeyedSampler and batched sampling: edge settings that must not fail, and a seeded row
that samples the same token alone or batched with others."""

from __future__ import annotations

import pytest

from vllm_mlx.engine import SamplingParams
from vllm_mlx.engine._mlx import int_list, mx
from vllm_mlx.engine.errors import InvalidRequest
from vllm_mlx.engine.sampler import KeyedSampler, request_processors, sample_batch
from vllm_mlx.engine.sampling import mask_eos

VOCAB = 64


def logprobs(rows: int, seed: int = 0) -> mx.array:
    logits = mx.random.normal((rows, VOCAB), key=mx.random.key(seed))
    return logits - mx.logsumexp(logits, axis=-1, keepdims=True)


def sampled(params: SamplingParams, rows: mx.array, draws: int = 8) -> list[int]:
    sampler = KeyedSampler(params)
    return [int_list(sampler(rows))[0] for _ in range(draws)]


@pytest.mark.parametrize("top_k", [VOCAB, VOCAB + 1, 10**6])
def test_top_k_at_or_above_the_vocabulary_means_no_top_k(top_k):
    row = logprobs(1)
    plain = sampled(SamplingParams(temperature=1.0, seed=3), row)
    assert sampled(SamplingParams(temperature=1.0, seed=3, top_k=top_k), row) == plain


@pytest.mark.parametrize("temperature", [1e-300, 1e-9, 5e-6])
def test_vanishing_temperature_is_greedy(temperature):
    row = logprobs(1, seed=4)
    best = int_list(mx.argmax(row, axis=-1))[0]
    assert sampled(SamplingParams(temperature=temperature), row) == [best] * 8


def test_seeds_beyond_64_bits_fold_into_the_key_space():
    row = logprobs(1, seed=5)
    folded = sampled(SamplingParams(temperature=1.0, seed=7), row)
    assert sampled(SamplingParams(temperature=1.0, seed=7 + 2**64), row) == folded
    assert len(set(sampled(SamplingParams(temperature=1.0, seed=-1), row))) >= 1


def test_a_seeded_row_samples_the_same_alone_or_batched():
    rows = logprobs(4, seed=6)
    params = [SamplingParams(temperature=0.8, top_p=0.9, top_k=20, seed=s) for s in range(4)]
    alone = [sampled(p, rows[i:i + 1], draws=5) for i, p in enumerate(params)]
    samplers = [KeyedSampler(p) for p in params]
    batched = [int_list(sample_batch(rows, samplers)) for _ in range(5)]
    assert [[draw[i] for draw in batched] for i in range(4)] == alone


def test_batched_noise_is_each_rows_own_noise():
    """Rows draw their noise in one vectorised pass; each row's numbers, and the key it
    leaves for the next step, are those it would have drawn alone."""
    alone = [KeyedSampler(SamplingParams(temperature=0.7, seed=s)) for s in (1, 2, 3)]
    together = [KeyedSampler(SamplingParams(temperature=0.7, seed=s)) for s in (1, 2, 3)]
    for step in range(4):
        rows = together if step % 2 else together[:2]  # batches change between steps
        expected = mx.concatenate([a.noise((1, 64), mx.float32)
                                   for a, _ in zip(alone, rows)])
        assert mx.array_equal(KeyedSampler.noise_rows(rows, 64, mx.float32), expected)
        if len(rows) == 2:  # the third row samples alone this step, in both worlds
            together[2].noise((1, 64), mx.float32)
            alone[2].noise((1, 64), mx.float32)


def test_json_output_with_eos_suppression_is_refused():
    with pytest.raises(InvalidRequest):
        request_processors(SamplingParams(json_object=True, min_tokens=3), lambda: None,
                           vocab_size=VOCAB)


@pytest.mark.parametrize("token", [-1, VOCAB, 10**12])
def test_logit_bias_outside_the_vocabulary_is_refused(token):
    with pytest.raises(InvalidRequest) as caught:
        request_processors(SamplingParams(logit_bias={token: 1.0}), lambda: None,
                           vocab_size=VOCAB)
    assert caught.value.param == "logit_bias"
    assert request_processors(SamplingParams(logit_bias={VOCAB - 1: 1.0}), lambda: None,
                              vocab_size=VOCAB)


def test_eos_is_masked_only_in_the_flagged_rows():
    logits = mx.zeros((3, VOCAB))
    masked = mask_eos(logits, [True, False, True], [2, 5, VOCAB + 10])
    flat = masked.tolist()
    assert flat[0][2] == flat[0][5] == flat[2][5] == -float("inf")
    assert flat[1] == [0.0] * VOCAB
    assert flat[0][3] == 0.0
    assert mask_eos(logits, [False, False, False], [2]) is logits
