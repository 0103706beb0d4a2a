"""The chat UI's in-process backend: an :class:`~vllm_mlx.engine.Engine` in this process.

Contract:

- :meth:`InProcessBackend.start` loads a model (HF repo id, folder or ``tiny:ARCH``) the
  same way ``vllm-mlx serve`` does (fast BLAS first, then the engine's owner thread).
- ``stream`` converts the conversation with
  :func:`~vllm_mlx.ui.conversation.to_openai_messages` (local paths), parses it with
  :mod:`vllm_mlx.content`, and decodes each attachment at most once per
  (file, kind, fps, max frames) through a byte-bounded LRU :class:`DecodedMediaCache`:
  media sent in earlier turns are reused as decoded images / sampled frames, never re-read.
  (The engine has no vision-feature cache in its public interface, so the vision encoder
  still runs over every image in the history on each turn.)
- Only files under ``media_roots`` (the UI's upload folder) are readable.
- Leaving the stream early cancels the engine job; engine, media and content errors are
  raised as :class:`~vllm_mlx.ui.backend.BackendError`.
"""

from __future__ import annotations

import asyncio
import threading
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..content import ContentError, MediaRef, PartRef, Resolver, VideoSampling, parse_messages
from ..engine.types import (
    ChatMessage,
    ContentPart,
    GenerationRequest,
    ImagePart,
    SamplingParams,
    VideoPart,
)
from ..media import MediaError, MediaPolicy
from .backend import BackendError, BackendInfo, GenerationOptions, Usage
from .conversation import Conversation, path_part, to_openai_messages

CacheKey = tuple[Any, ...]


def part_bytes(part: ContentPart) -> int:
    """Approximate memory held by a decoded part."""
    if isinstance(part, VideoPart):
        return int(part.video.frames.nbytes)
    if isinstance(part, ImagePart):
        width, height = part.image.size
        return width * height * max(1, len(part.image.getbands()))
    return 0


class DecodedMediaCache:
    """Thread-safe LRU of decoded media parts, bounded by their total size in bytes."""

    def __init__(self, max_bytes: int = 1 << 30) -> None:
        self.max_bytes = max_bytes
        self.hits = 0
        self.misses = 0
        self._items: OrderedDict[CacheKey, tuple[ContentPart, int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._items)

    def get_or_decode(self, key: CacheKey, decode: Callable[[], ContentPart]) -> ContentPart:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                self.hits += 1
                return self._items[key][0]
            self.misses += 1
        part = decode()  # outside the lock: decoding a video takes a while
        size = part_bytes(part)
        with self._lock:
            if key not in self._items and size <= self.max_bytes:
                self._items[key] = (part, size)
                self._bytes += size
            while self._bytes > self.max_bytes and self._items:
                _, (_, evicted) = self._items.popitem(last=False)
                self._bytes -= evicted
        return part


def media_key(ref: MediaRef, sampling: VideoSampling) -> CacheKey:
    """A file's identity (path, size, mtime) plus how it is sampled."""
    try:
        stat = Path(ref.source).stat()
        identity: tuple[Any, ...] = (ref.source, stat.st_size, stat.st_mtime_ns)
    except OSError:
        identity = (ref.source,)
    if ref.kind == "video":
        return (*identity, "video", sampling.fps, sampling.max_frames, sampling.min_frames)
    return (*identity, ref.kind)


@dataclass
class InProcessBackend:
    engine: Any  # vllm_mlx.engine.Engine
    model_name: str
    media_roots: tuple[Path, ...]
    cache: DecodedMediaCache

    @classmethod
    def start(cls, model: str, *, media_roots: Sequence[Path], tiny_cache_dir: Path | None = None,
              fast_blas: bool = True, cache_bytes: int = 1 << 30) -> InProcessBackend:
        from ..blas import activate_fast_blas

        activate_fast_blas(fast_blas)
        from ..engine import Engine, LoadOptions

        engine = Engine.start(model, LoadOptions(tiny_cache_dir=tiny_cache_dir))
        return cls(engine, model, tuple(Path(r) for r in media_roots),
                   DecodedMediaCache(cache_bytes))

    @property
    def info(self) -> BackendInfo:
        loaded = self.engine.model
        caps = loaded.capabilities
        return BackendInfo(model=self.model_name, vision=bool(caps.vision),
                           video=bool(caps.video), location="in-process",
                           random_weights=bool(loaded.random_weights))

    @property
    def video_jobs(self) -> None:
        return None  # the engine serves chat models; video generation needs a server

    def _resolver(self, options: GenerationOptions) -> Resolver:
        min_frames = int(self.engine.model.video_min_frames)
        sampling = VideoSampling(options.video_fps, options.video_max_frames,
                                 min(min_frames, options.video_max_frames))
        return Resolver(MediaPolicy(media_roots=self.media_roots), sampling)

    def _part(self, resolver: Resolver, ref: PartRef) -> ContentPart:
        if not isinstance(ref, MediaRef):
            return resolver.part_sync(ref)
        return self.cache.get_or_decode(media_key(ref, resolver.video),
                                        lambda: resolver.part_sync(ref))

    def build_request(self, conversation: Conversation,
                      options: GenerationOptions) -> GenerationRequest:
        """Blocking: decode (or reuse) media and build the engine request."""
        messages = to_openai_messages(conversation, path_part, options.system_prompt)
        resolver = self._resolver(options)
        try:
            resolved = tuple(ChatMessage(m.role, tuple(self._part(resolver, p) for p in m.parts))
                             for m in parse_messages(messages))
        except (MediaError, ContentError) as exc:
            raise BackendError(str(exc)) from exc
        sampling = SamplingParams(max_tokens=options.max_tokens,
                                  temperature=options.temperature)
        return GenerationRequest(messages=resolved, sampling=sampling)

    async def stream(self, conversation: Conversation,
                     options: GenerationOptions) -> AsyncIterator[str | Usage]:
        from ..engine import EngineError

        request = await asyncio.to_thread(self.build_request, conversation, options)
        tokens = 0
        try:
            async for chunk in self.engine.generate(request):
                if chunk.finish_reason == "error":
                    raise BackendError(chunk.error or "generation failed")
                tokens = max(tokens, chunk.completion_tokens)
                if chunk.text:
                    yield chunk.text
        except EngineError as exc:
            raise BackendError(str(exc)) from exc
        if tokens:
            yield Usage(tokens)

    def close(self) -> None:
        self.engine.shutdown()
