"""Per-request decoding helpers the libraries do not provide.

- :class:`StopMatcher` holds back text that could be the start of a stop string, so a
  stream never shows part of a stop sequence, and cuts the output where one appears.
- :func:`mask_eos` forbids end-of-sequence tokens in a batch's rows under ``min_tokens``
  or with ``ignore_eos``.
- :func:`token_logprob` reads the chosen token's log-probability and the top-k others.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, cast

from ._mlx import mx
from .types import TokenAlternative, TokenLogprob

if TYPE_CHECKING:
    from .tokens import Vocabulary

LogitsProcessor = Callable[[mx.array, mx.array], mx.array]


class StopMatcher:
    """Feed text segments in; get back what is safe to emit and whether to stop."""

    def __init__(self, stops: Sequence[str]) -> None:
        self._stops = [s for s in stops if s]
        self._pending = ""

    def feed(self, segment: str) -> tuple[str, bool]:
        if not self._stops:
            return segment, False
        self._pending += segment
        cut = min((i for s in self._stops if (i := self._pending.find(s)) >= 0), default=-1)
        if cut >= 0:
            emit, self._pending = self._pending[:cut], ""
            return emit, True
        hold = self._longest_partial_suffix()
        emit = self._pending[: len(self._pending) - hold]
        self._pending = self._pending[len(emit):]
        return emit, False

    def flush(self) -> str:
        emit, self._pending = self._pending, ""
        return emit

    def _longest_partial_suffix(self) -> int:
        text = self._pending
        best = 0
        for stop in self._stops:
            for size in range(min(len(stop) - 1, len(text)), best, -1):
                if text.endswith(stop[:size]):
                    best = size
                    break
        return best


def mask_eos(logits: mx.array, rows: Sequence[bool], eos_ids: Sequence[int]) -> mx.array:
    """(B, V) logits with the end-of-sequence tokens forbidden in the flagged rows (those
    under ``min_tokens``, or with ``ignore_eos``): one scatter for the whole batch, in place."""
    columns = [i for i in eos_ids if 0 <= i < logits.shape[-1]]
    flagged = [i for i, flag in enumerate(rows) if flag]
    if columns and flagged:
        logits[mx.array(flagged)[:, None], mx.array(columns)[None, :]] = -float("inf")
    return logits


def token_logprob(vocab: Vocabulary, token: int, logprobs: mx.array, top: int
                  ) -> TokenLogprob:
    """The chosen token's log-probability, with the ``top`` most likely alternatives."""
    flat = logprobs.reshape(-1)
    alternatives: tuple[TokenAlternative, ...] = ()
    if top > 0:
        k = min(top, flat.size)
        ids = mx.argpartition(-flat, kth=k - 1)[:k]
        values = flat[ids]
        order = mx.argsort(-values)
        # 1-D arrays: ``tolist`` gives flat lists of scalars (its stub says nested-or-scalar)
        top_ids = cast(list[int], ids[order].tolist())
        top_values = cast(list[float], values[order].tolist())
        alternatives = tuple(
            TokenAlternative(int(i), vocab.text(int(i)), float(v), vocab.raw_bytes(int(i)))
            for i, v in zip(top_ids, top_values))
    return TokenLogprob(token_id=token, token=vocab.text(token),
                        logprob=float(flat[token]), top=alternatives,
                        raw=vocab.raw_bytes(token))
