"""Tokenizer facts the decode loop needs: end-of-sequence ids and a fresh detokenizer."""

from __future__ import annotations

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


def new_detokenizer(loaded: LoadedModel) -> Any:
    """An isolated streaming detokenizer (one per request)."""
    if loaded.is_vision:
        from mlx_vlm.tokenizer_utils import make_streaming_detokenizer

        return make_streaming_detokenizer(loaded.processor)
    return loaded.tokenizer.detokenizer
