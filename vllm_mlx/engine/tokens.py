"""Tokenizer facts the decode loop needs: end-of-sequence ids and a fresh detokenizer."""

from __future__ import annotations

import copy
from typing import Any

from .loader import LoadedModel


def eos_token_ids(loaded: LoadedModel) -> list[int]:
    tokenizer = loaded.tokenizer
    criteria = getattr(tokenizer, "stopping_criteria", None)
    ids = getattr(criteria, "eos_token_ids", None) or getattr(tokenizer, "eos_token_ids", None)
    if ids is None:
        single = getattr(tokenizer, "eos_token_id", None)
        ids = [single] if single is not None else []
    return [int(i) for i in ids]


def detokenizer_prototype(loaded: LoadedModel) -> Any:
    """A streaming detokenizer for ``loaded``; :func:`new_detokenizer` copies it per request.

    Text models get mlx-lm's, which releases a token's text as soon as its bytes are
    complete. mlx-vlm's detokenizers hold each word back until the next word begins, so a
    reply's first text would wait a decode step longer; vision models therefore get
    mlx-lm's detokenizer of the same kind, set to trim the leading space as mlx-vlm's would.
    The text is the same, except where tokens do not form valid UTF-8: mlx-lm shows
    U+FFFD there, as ``tokenizer.decode`` does, where mlx-vlm drops the bytes at the end.
    """
    if not loaded.is_vision:
        return loaded.tokenizer.detokenizer
    from mlx_lm.tokenizer_utils import BPEStreamingDetokenizer, SPMStreamingDetokenizer

    held = loaded.processor.detokenizer
    trim = bool(getattr(held, "trim_space", False))
    kind = type(held).__name__
    if kind == "SPMStreamingDetokenizer":
        return SPMStreamingDetokenizer(loaded.tokenizer, trim_space=trim)
    if kind != "BPEStreamingDetokenizer":
        return held
    eager = BPEStreamingDetokenizer(loaded.tokenizer)
    if not trim:  # mlx-lm's always trims the first space; copies keep this override
        eager._maybe_trim_space = _keep_space  # type: ignore[method-assign]
    return eager


def new_detokenizer(prototype: Any) -> Any:
    """An isolated, reset copy of a streaming detokenizer (one per request)."""
    detokenizer = copy.copy(prototype)
    detokenizer.reset()
    return detokenizer


def _keep_space(text: str) -> str:
    return text
