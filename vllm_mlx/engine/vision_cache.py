"""Vision feature cache: the vision tower's output for a request's media, reused when the
same media come back in the same order with different text around them.

The prefix cache already skips the encoder for a follow-up that extends an earlier
conversation; this cache covers the rest (a new system prompt, the same photo in a new
chat, another question about a clip).

Key: the ordered content hashes of the request's decoded images and sampled video frames
(so the video sampling settings are part of it), plus the shapes and grid sizes the
processor produced. Value: the outputs of the model's vision tower, in call order (one
call for most families; Qwen3-VL makes one for images and one for videos).

How: for one ``get_input_embeddings`` call on the owner thread, the model's
``vision_tower`` attribute is shadowed by a recorder (miss) or a replayer (hit). Each
family's own projection and merge of the features into the prompt runs unchanged, so a
hit yields bit-identical embeddings. Entries are evicted least recently used first, by
bytes.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ._mlx import mx
from .vision_passes import shadowed

Key = tuple[Any, ...]


# Processor outputs with one entry per prompt token: they follow the text, not the media
# (Gemma 3's token_type_ids under transformers < 5.25 made every new question a miss).
PER_TOKEN = frozenset({"token_type_ids", "mm_token_type_ids"})


def feature_key(media: tuple[str, ...], pixel_values: Any, model_kwargs: dict[str, Any]
                ) -> Key | None:
    """The cache key of a prompt's media, or None when it has none to cache."""
    if not media:
        return None
    extras = []
    for name in sorted(model_kwargs.keys() - PER_TOKEN):
        value = model_kwargs[name]
        if isinstance(value, mx.array):
            extras.append((name, _frozen(value.tolist()) if value.size <= 256 else value.shape))
    return (media, _shape(pixel_values), tuple(extras))


def _frozen(value: Any) -> Any:
    return tuple(_frozen(v) for v in value) if isinstance(value, list) else value


def _shape(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return tuple(_shape(v) for v in value)
    return tuple(getattr(value, "shape", ()))


def _nbytes(value: Any) -> int:
    if isinstance(value, (list, tuple)):
        return sum(_nbytes(v) for v in value)
    return int(getattr(value, "nbytes", 0))


class VisionFeatureCache:
    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.nbytes = 0
        self.hits = 0
        self.misses = 0
        self._entries: OrderedDict[Key, list[Any]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    @contextmanager
    def around(self, model: Any, key: Key | None) -> Iterator[None]:
        """Serve or record ``model.vision_tower`` calls made inside the block."""
        tower = getattr(model, "vision_tower", None)
        if key is None or self.max_bytes <= 0 or tower is None:
            yield
            return
        cached = self._entries.get(key)
        if cached is not None:
            self._entries.move_to_end(key)
            self.hits += 1
            shadow = _Shadow(tower, list(cached), replay=True)
        else:
            self.misses += 1
            cached = []
            shadow = _Shadow(tower, cached, replay=False)
        with shadowed(model, "vision_tower", shadow):
            yield
        if key not in self._entries and cached:
            self._store(key, cached)

    def _store(self, key: Key, outputs: list[Any]) -> None:
        size = _nbytes(outputs)
        if size > self.max_bytes:
            return
        self._entries[key] = outputs
        self.nbytes += size
        while self.nbytes > self.max_bytes:
            _, evicted = self._entries.popitem(last=False)
            self.nbytes -= _nbytes(evicted)


class _Shadow:
    """Stands in for the vision tower: calls are recorded or replayed, and every other
    attribute (the models read e.g. ``patch_embed`` for its dtype) is the tower's."""

    def __init__(self, tower: Any, outputs: list[Any], replay: bool) -> None:
        self._tower, self._outputs, self._replay = tower, outputs, replay

    def __getattr__(self, name: str) -> Any:
        return getattr(self._tower, name)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self._replay and self._outputs:
            return self._outputs.pop(0)
        # (A replay with more calls than recorded cannot happen for one key; compute.)
        result = self._tower(*args, **kwargs)
        if not self._replay:
            self._outputs.append(result)
        return result
