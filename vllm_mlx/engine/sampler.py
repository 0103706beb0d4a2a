"""Per-request token samplers and logits processors for batched decoding.

Each request owns its random key (from its ``seed``, or fresh), so a seeded request
samples the same tokens whatever else shares its batch. Filters (top-k, top-p, min-p)
and penalties reuse mlx-lm's implementations; temperature 0 is argmax.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any

from ._mlx import mx
from .sampling import LogitsProcessor, eos_suppressor
from .types import SamplingParams

RowSampler = Callable[[mx.array], mx.array]  # (1, V) log-probs -> (1,) token


class KeyedSampler:
    """Temperature / top-k / top-p / min-p sampling with a private PRNG key."""

    def __init__(self, params: SamplingParams) -> None:
        self.params = params
        seed = params.seed if params.seed is not None else secrets.randbits(63)
        self._key = mx.random.key(seed)

    @property
    def greedy(self) -> bool:
        return self.params.temperature == 0

    def __call__(self, logprobs: mx.array) -> mx.array:
        if self.greedy:
            return mx.argmax(logprobs, axis=-1)
        from mlx_lm.sample_utils import apply_min_p, apply_top_k, apply_top_p

        p = self.params
        if p.top_k > 0:
            logprobs = apply_top_k(logprobs, p.top_k)
        if 0 < p.top_p < 1:
            logprobs = apply_top_p(logprobs, p.top_p)
        if p.min_p > 0:
            logprobs = apply_min_p(logprobs, p.min_p)
        self._key, use = mx.random.split(self._key)
        return mx.random.categorical(logprobs * (1 / p.temperature), key=use)


def request_processors(params: SamplingParams, eos_ids: list[int],
                       grammar: Callable[[], Any]) -> list[LogitsProcessor]:
    """Logit bias and penalties (mlx-lm's), then the JSON constraint, then EOS suppression.

    ``grammar`` returns the model's grammar compiler; it is only called (and built, the
    first time) when the request asks for JSON output.
    """
    from mlx_lm.sample_utils import make_logits_processors

    processors = list(make_logits_processors(
        params.logit_bias, params.repetition_penalty,
        presence_penalty=params.presence_penalty, frequency_penalty=params.frequency_penalty,
    ))
    if params.json_schema is not None or params.json_object:
        from .constrained import json_logits_processor

        processors.append(json_logits_processor(grammar(), params.json_schema))
    suppress = eos_suppressor(eos_ids, params.min_tokens, params.ignore_eos)
    if suppress is not None:
        processors.append(suppress)
    return processors
