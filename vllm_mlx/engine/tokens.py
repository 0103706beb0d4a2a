"""Tokenizer facts the decode loop needs: end-of-sequence ids, fresh detokenizers, each
token's text and raw bytes (for logprobs), and which tokens are special.

Special tokens are the tokenizer's added tokens marked ``special`` plus its named ones
(bos, eos, pad...): the ones ``decode(..., skip_special_tokens=True)`` leaves out. Added
tokens that are not special (Qwen's ``<tool_call>``, ``<think>``) stay text.
"""

from __future__ import annotations

import copy
from typing import Any

from .loaded import LoadedModel

_SPM_SPACE = "\u2581"


def eos_token_ids(loaded: LoadedModel) -> list[int]:
    tokenizer = loaded.tokenizer
    criteria = getattr(tokenizer, "stopping_criteria", None)
    ids = getattr(criteria, "eos_token_ids", None) or getattr(tokenizer, "eos_token_ids", None)
    if ids is None:
        single = getattr(tokenizer, "eos_token_id", None)
        ids = [single] if single is not None else []
    return [int(i) for i in ids]


def special_token_ids(tokenizer: Any) -> frozenset[int]:
    """The ids ``tokenizer.decode(ids, skip_special_tokens=True)`` would drop."""
    added = getattr(tokenizer, "added_tokens_decoder", None) or {}
    marked = {int(i) for i, token in added.items() if getattr(token, "special", False)}
    named = getattr(tokenizer, "all_special_ids", None) or ()
    return frozenset(marked | {int(i) for i in named})


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


def _space_kept(prototype: Any) -> Any:
    """A copy of ``prototype`` that keeps a leading space of the first token's text."""
    kind = type(prototype).__name__
    kept = copy.copy(prototype)
    if kind == "BPEStreamingDetokenizer":
        kept._maybe_trim_space = _keep_space
    elif kind == "SPMStreamingDetokenizer":
        kept.trim_space = False
    return kept


class Vocabulary:
    """Per-model token facts, built once: detokenizers, and each token's text and bytes.

    A chat reply's first space is trimmed, as mlx-lm and mlx-vlm show it; a raw prompt's
    continuation keeps it, so that prompt + completion is the text the tokens spell.
    """

    def __init__(self, loaded: LoadedModel) -> None:
        self.tokenizer = loaded.tokenizer
        self._trimmed = detokenizer_prototype(loaded)
        self._kept = _space_kept(self._trimmed)
        self._bytes: dict[int, bytes] = {}
        self.special_ids = special_token_ids(loaded.tokenizer)

    def detokenizer(self, *, continuation: bool) -> Any:
        return new_detokenizer(self._kept if continuation else self._trimmed)

    def text(self, token: int) -> str:
        return str(self.tokenizer.decode([token]))

    def raw_bytes(self, token: int) -> bytes:
        """The token's own bytes: part of a UTF-8 character where its text shows U+FFFD."""
        if token not in self._bytes:
            self._bytes[token] = self._lookup_bytes(token)
        return self._bytes[token]

    def _lookup_bytes(self, token: int) -> bytes:
        kind = type(self._trimmed).__name__
        tokenmap = getattr(self._trimmed, "tokenmap", None)
        if tokenmap is None or not 0 <= token < len(tokenmap):
            return self.text(token).encode("utf-8")
        piece = tokenmap[token]
        if kind == "SPMStreamingDetokenizer":
            return bytes(piece).replace(_SPM_SPACE.encode(), b" ")
        if kind == "BPEStreamingDetokenizer":
            from mlx_lm.tokenizer_utils import _byte_decoder

            table = _byte_decoder()
            return b"".join(bytes([table[c]]) if c in table else c.encode("utf-8")
                            for c in piece)
        return self.text(token).encode("utf-8")
