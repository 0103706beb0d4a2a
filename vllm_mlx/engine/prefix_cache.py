"""Token-prefix KV reuse across requests, bounded in bytes, least recently used first out.

An entry is the KV of a finished request (prompt plus generated tokens) together with
the ordered content hashes of its media and, for mRoPE models, its ``rope_deltas``.
Image and video placeholder tokens are the same ids whatever the picture, so a prefix
may extend past a media token only when the media are the same, in the same order.

Where media begin in a prompt is read from the family's placeholder ids
(:class:`MediaPositions`). A family whose placeholders are not known gets the
conservative rule: with different media, nothing is reused; with the same media, the
suffix is taken to hold media (the encoder runs again, and the feature cache serves it).

Only plain ``KVCache`` layers are cached (rotating, quantized or state-space caches
cannot be cut at an arbitrary prefix); for other models the cache stays empty.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._mlx import mx
from .types import GenerationRequest, ImagePart, VideoPart

MIN_REUSE = 8  # shorter matches are not worth a cache copy


def media_hashes(request: GenerationRequest) -> tuple[str, ...]:
    """Content hashes of a request's images and videos, in prompt order (the message
    parts, or a raw prompt's own media)."""
    parts: list[Any] = [p for m in request.messages for p in m.content]
    parts += [ImagePart(image) for image in request.images]
    parts += [VideoPart(video) for video in request.videos]
    digests = []
    for part in parts:
        if isinstance(part, ImagePart):
            image = part.image
            data = f"{image.mode}{image.size}".encode() + image.tobytes()
        elif isinstance(part, VideoPart):
            data = part.video.frames.tobytes() + repr(part.video.frame_indices).encode()
        else:
            continue
        digests.append(hashlib.blake2b(data, digest_size=16).hexdigest())
    return tuple(digests)


@dataclass(frozen=True)
class MediaPositions:
    """Which prompt positions are media placeholders: ``ids`` (None when the family's are
    not known) and, for families that mark media with negative ids, every id below 0."""

    ids: frozenset[int] | None
    negative: bool = False

    @property
    def known(self) -> bool:
        return self.ids is not None or self.negative

    def mask(self, tokens: np.ndarray) -> np.ndarray:
        found = np.isin(tokens, np.fromiter(self.ids or (), dtype=np.int64))
        return found | (tokens < 0) if self.negative else found

    def first(self, tokens: np.ndarray, has_media: bool) -> int:
        """The first media position (``len(tokens)`` if none; 0 if unknown with media)."""
        if not has_media:
            return len(tokens)
        if not self.known:
            return 0
        hits = np.flatnonzero(self.mask(tokens))
        return int(hits[0]) if hits.size else len(tokens)

    def any(self, tokens: np.ndarray, has_media: bool) -> bool:
        """Whether ``tokens`` hold media (unknown placeholders: whenever there are media)."""
        if not has_media:
            return False
        return bool(self.mask(tokens).any()) if self.known else True


@dataclass
class CacheEntry:
    tokens: np.ndarray  # (L,) int
    layers: list[tuple[mx.array, mx.array]]  # per layer (keys, values), length L
    media: tuple[str, ...]
    rope_deltas: Any
    nbytes: int


@dataclass
class CacheHit:
    entry: CacheEntry
    length: int  # prompt positions served from the cache
    prefix_has_media: bool

    @property
    def rope_deltas(self) -> Any:
        """mRoPE offset after the prefix: the entry's only if its media are in the prefix."""
        if self.entry.rope_deltas is None or self.prefix_has_media:
            return self.entry.rope_deltas
        return mx.zeros_like(self.entry.rope_deltas)


def cacheable(cache: Sequence[Any]) -> bool:
    return all(type(c).__name__ == "KVCache" for c in cache)


class PrefixCache:
    def __init__(self, max_bytes: int, positions: MediaPositions) -> None:
        self.max_bytes = max_bytes
        self.positions = positions
        self.entries: OrderedDict[int, CacheEntry] = OrderedDict()
        self.nbytes = 0
        self._next = 0

    def lookup(self, prompt: Sequence[int], media: tuple[str, ...]) -> CacheHit | None:
        tokens = np.asarray(prompt, dtype=np.int64)
        best: tuple[int, int] | None = None
        for key, entry in self.entries.items():
            n = min(len(entry.tokens), len(tokens) - 1)  # keep one token to compute
            mismatch = np.nonzero(entry.tokens[:n] != tokens[:n])[0]
            length = int(mismatch[0]) if mismatch.size else n
            if entry.media != media:
                length = min(length, self.positions.first(tokens, bool(media)),
                             self.positions.first(entry.tokens, bool(entry.media)))
            if length >= MIN_REUSE and (best is None or length > best[1]):
                best = (key, length)
        if best is None:
            return None
        self.entries.move_to_end(best[0])
        entry = self.entries[best[0]]
        in_prefix = self.positions.any(entry.tokens[:best[1]], bool(entry.media))
        return CacheHit(entry, best[1], in_prefix)

    def suffix_has_media(self, prompt: Sequence[int], start: int, media: tuple[str, ...]
                         ) -> bool:
        tail = np.asarray(prompt[start:], dtype=np.int64)
        return self.positions.any(tail, bool(media))

    def store(self, tokens: Sequence[int], cache: Sequence[Any], media: tuple[str, ...],
              rope_deltas: Any) -> None:
        # A finished row's cache may hold one position more than ``tokens`` (its
        # end-of-sequence token, fed by the step launched before it was read).
        length = min(len(tokens), *(int(c.offset) for c in cache))
        if length < MIN_REUSE:
            return
        layers = [(mx.contiguous(c.keys[..., :length, :]), mx.contiguous(c.values[..., :length, :]))
                  for c in cache]
        mx.eval(layers)
        size = sum(k.nbytes + v.nbytes for k, v in layers)
        if size > self.max_bytes:
            return
        entry = CacheEntry(np.asarray(tokens[:length], dtype=np.int64), layers, media,
                           rope_deltas, size)
        self.entries[self._next] = entry
        self._next += 1
        self.nbytes += size
        while self.nbytes > self.max_bytes:
            _, old = self.entries.popitem(last=False)
            self.nbytes -= old.nbytes


def rebuild(hit: CacheHit, fresh: list[Any]) -> list[Any]:
    """Fill ``fresh`` (empty per-layer caches) with the hit's first ``length`` positions."""
    for layer, (keys, values) in zip(fresh, hit.entry.layers):
        layer.keys = keys[..., :hit.length, :]
        layer.values = values[..., :hit.length, :]
        layer.offset = hit.length
    return fresh
