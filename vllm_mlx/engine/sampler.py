"""Per-request token samplers and logits processors for batched decoding.

Each request owns its random key (from its ``seed``, or fresh), so a seeded request
samples the same tokens whatever else shares its batch. Filters (top-k, top-p, min-p)
and penalties reuse mlx-lm's implementations; temperature 0 (or below ``GREEDY_BELOW``) is
argmax. Rows that share their filters are sampled together: one batched filter pass, and
per-row Gumbel noise from each row's key.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any

from ._mlx import mx
from .errors import InvalidRequest
from .sampling import LogitsProcessor
from .types import SamplingParams

RowSampler = Callable[[mx.array], mx.array]  # (1, V) log-probs -> (1,) token

_split_keys = mx.vmap(mx.random.split)  # (N, key) -> (N, 2, key), each row split alone

GREEDY_BELOW = 1e-5  # temperatures this small are argmax: 1 / t would overflow
_SEED_SPACE = 2**64  # PRNG keys are unsigned 64-bit


class KeyedSampler:
    """Temperature / top-k / top-p / min-p sampling with a private PRNG key."""

    def __init__(self, params: SamplingParams) -> None:
        self.params = params
        seed = params.seed % _SEED_SPACE if params.seed is not None else secrets.randbits(63)
        self._key = mx.random.key(seed)

    @property
    def greedy(self) -> bool:
        return self.params.temperature < GREEDY_BELOW

    @property
    def filters(self) -> tuple[int, float, float, float]:
        """What shapes the distribution; rows that share it are sampled in one batch."""
        p = self.params
        return p.top_k, p.top_p, p.min_p, p.temperature

    def noise(self, shape: tuple[int, ...], dtype: mx.Dtype) -> mx.array:
        """Gumbel noise from this request's own key: argmax(logits + noise) samples."""
        self._key, use = mx.random.split(self._key)
        return mx.random.gumbel(shape, dtype=dtype, key=use)

    @staticmethod
    def noise_rows(samplers: list[KeyedSampler], width: int, dtype: mx.Dtype) -> mx.array:
        """(N, width) noise, row i exactly what ``samplers[i].noise((1, width))`` gives, in
        a few vectorised operations instead of two per row."""
        if len(samplers) == 1:
            return samplers[0].noise((1, width), dtype)
        pairs = _split_keys(mx.stack([s._key for s in samplers]))  # (N, 2, key)
        for i, sampler in enumerate(samplers):
            sampler._key = pairs[i, 0]
        draw = mx.vmap(lambda key: mx.random.gumbel((width,), dtype=dtype, key=key))
        return draw(pairs[:, 1])

    def __call__(self, logprobs: mx.array) -> mx.array:
        if self.greedy:
            return mx.argmax(logprobs, axis=-1)
        return sample_batch(logprobs, [self])


def sample_batch(logprobs: mx.array, samplers: list[KeyedSampler]) -> mx.array:
    """One token per row of (N, V) log-probs; the samplers share ``filters``.

    Each row draws its noise from its own key, so a seeded request samples the same
    tokens alone or batched with any others.
    """
    from mlx_lm.sample_utils import apply_min_p, apply_top_k, apply_top_p

    p = samplers[0].params
    if 0 < p.top_k < logprobs.shape[-1]:
        logprobs = apply_top_k(logprobs, p.top_k)
    if 0 < p.top_p < 1:
        logprobs = apply_top_p(logprobs, p.top_p)
    if p.min_p > 0:
        logprobs = apply_min_p(logprobs, p.min_p)
    scaled = logprobs * (1 / p.temperature)
    noise = KeyedSampler.noise_rows(samplers, scaled.shape[-1], scaled.dtype)
    return mx.argmax(scaled + noise, axis=-1)


def check_sampling(params: SamplingParams, grammar: Callable[[], Any], *,
                   vocab_size: int) -> None:
    """Raise :class:`InvalidRequest` for settings no decoding can honour: ``logit_bias`` ids
    outside the vocabulary, JSON output with end-of-sequence suppressed, a JSON schema or
    grammar that does not compile. Pure CPU work: it may run on a caller's thread.

    ``grammar`` returns the model's grammar compiler; it is only called (and built, the
    first time) when the request asks for constrained output.
    """
    _check_logit_bias(params.logit_bias, vocab_size)
    if params.json_schema is not None or params.json_object:
        if params.ignore_eos or params.min_tokens > 0:
            raise InvalidRequest("JSON output ends where the JSON value ends: it cannot be "
                                 "combined with ignore_eos or min_tokens", param="min_tokens")
        grammar().grammar(params.json_schema)
    elif params.grammar is not None:
        grammar().lark(params.grammar)


def request_processors(params: SamplingParams, grammar: Callable[[], Any], *,
                       vocab_size: int) -> list[LogitsProcessor]:
    """Logit bias and penalties (mlx-lm's), then the JSON constraint (checked first with
    :func:`check_sampling`). End-of-sequence suppression is not a processor: the scheduler
    masks it for the whole batch."""
    from mlx_lm.sample_utils import make_logits_processors

    check_sampling(params, grammar, vocab_size=vocab_size)
    processors = list(make_logits_processors(
        params.logit_bias, params.repetition_penalty,
        presence_penalty=params.presence_penalty, frequency_penalty=params.frequency_penalty,
    ))
    if params.json_schema is not None or params.json_object:
        from .constrained import json_logits_processor

        processors.append(json_logits_processor(grammar(), params.json_schema))
    elif params.grammar is not None:
        from .constrained import grammar_logits_processor

        compiler = grammar()
        processors.append(grammar_logits_processor(compiler, compiler.lark(params.grammar)))
    return processors


def _check_logit_bias(bias: dict[int, float] | None, vocab_size: int) -> None:
    """Token ids outside the vocabulary would index past the logits (MLX does not check)."""
    outside = sorted(t for t in bias or {} if not 0 <= t < vocab_size)
    if outside:
        raise InvalidRequest(f"logit_bias names token id {outside[0]}, outside this model's "
                             f"vocabulary (ids 0 to {vocab_size - 1})", param="logit_bias")
