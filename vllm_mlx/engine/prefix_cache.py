"""Token-prefix KV reuse across requests, bounded in bytes, least recently used first out.

An entry is the KV of a finished request (prompt plus generated tokens) together with
the ordered content hashes of its media and, for mRoPE models, its ``rope_deltas``.
Image and video placeholder tokens are the same ids whatever the picture, so a prefix
may extend past a media token only when the media are the same, in the same order.

Where media begin in a prompt is read from the family's placeholder ids
(:class:`MediaPositions`). A family whose placeholders are not known gets the
conservative rule: with different media, nothing is reused; with the same media, the
suffix is taken to hold media (the encoder runs again, and the feature cache serves it).

Models whose every layer is a plain ``KVCache`` (:func:`cacheable`) store the KV and
reuse any long enough matching prefix of it. Models with sliding-window or recurrent layers
(:func:`.snapshots.snapshottable`) store whole-cache snapshots instead (``whole``): at the
end of a prompt's prefill and at the end of its generation, each holding exactly the
tokens its cache has read. A snapshot is reused only when all of its tokens are a prefix
of the new prompt (one token at least left to compute) and its media are the prompt's
first media, in order; it is never cut. Other models (cross-attention caches, caches with
no layer counting its tokens) get no prefix cache. Either kind is held to the one byte
budget (``--prefix-cache-mb``), least recently used out first.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from . import snapshots
from ._mlx import mx
from .placeholders import ALL_NEGATIVE, media_placeholder_ids
from .types import GenerationRequest, ImagePart, VideoPart

if TYPE_CHECKING:
    from .loader import LoadedModel

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


def media_positions(loaded: LoadedModel) -> MediaPositions:
    """Where a model's prompts hold media: its placeholder ids (:mod:`.placeholders`)."""
    ids = media_placeholder_ids(loaded)
    if ids is None:
        return MediaPositions(None)
    return MediaPositions(ids - {ALL_NEGATIVE}, negative=ALL_NEGATIVE in ids)


@dataclass
class CacheEntry:
    tokens: np.ndarray  # (L,) int
    layers: list[tuple[mx.array, mx.array]]  # per layer (keys, values), length L
    media: tuple[str, ...]
    rope_deltas: Any
    nbytes: int
    snapshot: list[Any] | None = None  # a whole-cache entry's per-layer caches (no layers)


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


def make_prefix_cache(max_bytes: int, reusable: bool, cache: Sequence[Any],
                      positions: MediaPositions) -> PrefixCache | None:
    """The prefix cache a model with this fresh ``cache`` gets, if any."""
    if max_bytes <= 0 or not reusable:
        return None
    if cacheable(cache):
        return PrefixCache(max_bytes, positions)
    if snapshots.snapshottable(cache):
        return PrefixCache(max_bytes, positions, whole=True)
    return None


class PrefixCache:
    def __init__(self, max_bytes: int, positions: MediaPositions, whole: bool = False
                 ) -> None:
        self.max_bytes = max_bytes
        self.positions = positions
        self.whole = whole  # entries are whole-cache snapshots, reused only whole
        self.entries: OrderedDict[int, CacheEntry] = OrderedDict()
        self.nbytes = 0
        self._next = 0

    def lookup(self, prompt: Sequence[int], media: tuple[str, ...]) -> CacheHit | None:
        tokens = np.asarray(prompt, dtype=np.int64)
        best: tuple[int, int] | None = None
        for key, entry in self.entries.items():
            length = self._match(entry, tokens, media)
            if length >= MIN_REUSE and (best is None or length > best[1]):
                best = (key, length)
        if best is None:
            return None
        self.entries.move_to_end(best[0])
        entry = self.entries[best[0]]
        in_prefix = self.positions.any(entry.tokens[:best[1]], bool(entry.media))
        return CacheHit(entry, best[1], in_prefix)

    def _match(self, entry: CacheEntry, tokens: np.ndarray, media: tuple[str, ...]) -> int:
        """Prompt positions ``entry`` can serve (0 for a snapshot it cannot serve whole)."""
        n = min(len(entry.tokens), len(tokens) - 1)  # keep one token to compute
        mismatch = np.nonzero(entry.tokens[:n] != tokens[:n])[0]
        length = int(mismatch[0]) if mismatch.size else n
        if not self._media_agree(entry.media, media):
            length = min(length, self.positions.first(tokens, bool(media)),
                         self.positions.first(entry.tokens, bool(entry.media)))
        return 0 if self.whole and length < len(entry.tokens) else length

    def _media_agree(self, stored: tuple[str, ...], media: tuple[str, ...]) -> bool:
        """A snapshot holds all its media: the prompt's first media must be those. Where
        placeholders are not known, a later medium could hide in it: all must agree."""
        if not self.whole or not self.positions.known:
            return stored == media
        return media[:len(stored)] == stored

    def suffix_has_media(self, prompt: Sequence[int], start: int, media: tuple[str, ...]
                         ) -> bool:
        tail = np.asarray(prompt[start:], dtype=np.int64)
        return self.positions.any(tail, bool(media))

    def store(self, tokens: Sequence[int], cache: Sequence[Any], media: tuple[str, ...],
              rope_deltas: Any) -> None:
        """Keep ``cache``, which has read ``tokens`` or, for a finished row, one position
        more (its end-of-sequence token, fed by the step launched before it was read)."""
        entry = (self._snapshot if self.whole else self._cut)(tokens, cache, media,
                                                              rope_deltas)
        if entry is None or entry.nbytes > self.max_bytes:
            return
        if self.whole:  # the same tokens and media again: the newer snapshot replaces
            for key in [k for k, e in self.entries.items() if e.media == media
                        and np.array_equal(e.tokens, entry.tokens)]:
                self.nbytes -= self.entries.pop(key).nbytes
        self._insert(entry)

    def _cut(self, tokens: Sequence[int], cache: Sequence[Any], media: tuple[str, ...],
             rope_deltas: Any) -> CacheEntry | None:
        length = min(len(tokens), *(int(c.offset) for c in cache))
        if length < MIN_REUSE:
            return None
        layers = [(mx.contiguous(c.keys[..., :length, :]), mx.contiguous(c.values[..., :length, :]))
                  for c in cache]
        mx.eval(layers)
        size = sum(k.nbytes + v.nbytes for k, v in layers)
        return CacheEntry(np.asarray(tokens[:length], dtype=np.int64), layers, media,
                          rope_deltas, size)

    def _snapshot(self, tokens: Sequence[int], cache: Sequence[Any], media: tuple[str, ...],
                  rope_deltas: Any) -> CacheEntry | None:
        length = snapshots.positions(cache)
        if length is None or not MIN_REUSE <= length <= len(tokens):
            return None
        copied = snapshots.compact(snapshots.clone(cache))
        return CacheEntry(np.asarray(tokens[:length], dtype=np.int64), [], media,
                          rope_deltas, snapshots.nbytes(copied), copied)

    def restore(self, hit: CacheHit, fresh: list[Any]) -> list[Any]:
        """A new request's cache holding the hit's positions: a copy of a snapshot, or
        ``fresh`` (empty per-layer caches) filled with the hit's prefix."""
        if hit.entry.snapshot is not None:
            return snapshots.clone(hit.entry.snapshot)
        return rebuild(hit, fresh)

    def _insert(self, entry: CacheEntry) -> None:
        self.entries[self._next] = entry
        self._next += 1
        self.nbytes += entry.nbytes
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
