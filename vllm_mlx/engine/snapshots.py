"""Whole-cache snapshots, for families whose caches cannot be cut at an arbitrary prefix.

A sliding-window layer (``RotatingKVCache``) has dropped and reordered old positions, and
a recurrent layer (``ArraysCache``, ``MambaCache``: linear attention, convolutions) holds
one state for everything it has read; neither can give back its state after the first
``k`` tokens. A copy of the whole per-layer cache, taken where the tokens it holds are
exactly known, can be reused by a later prompt that starts with all of those tokens.

Contract:

- :func:`snapshottable` says whether a model's fresh cache can be snapshotted: every layer
  is of a kind whose whole state lives in its attributes, and a layer counts the tokens
  read (``offset``), so :func:`positions` knows what a snapshot holds.
- :func:`clone` copies a single request's cache: new layer objects with new array handles.
  Cache objects are mutated in place (attributes rebound, and MLX slice assignment rewrites
  an array object), so neither the snapshot nor the cache it came from may share an object
  with the other. Buffers are shared until one side writes; MLX then copies, since a
  buffer with two owners is never donated.
- :func:`compact` drops a ``KVCache``'s unused capacity, so a stored snapshot's bytes
  (:func:`nbytes`) are what it holds.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

from ._mlx import mx

LAYER_KINDS = frozenset({"KVCache", "RotatingKVCache", "ArraysCache", "MambaCache"})


def positions(cache: Sequence[Any]) -> int | None:
    """Tokens a single request's cache has read (None when no layer counts them)."""
    for layer in cache:
        offset = getattr(layer, "offset", None)
        if isinstance(offset, int):
            return offset
    return None


def snapshottable(cache: Sequence[Any]) -> bool:
    return (bool(cache) and all(type(c).__name__ in LAYER_KINDS for c in cache)
            and positions(cache) is not None)


def clone(cache: Sequence[Any]) -> list[Any]:
    """An independent copy of a single request's per-layer cache."""
    return [_clone_layer(layer) for layer in cache]


def compact(cache: list[Any]) -> list[Any]:
    """Trim unused capacity past ``offset`` (in place) and evaluate every array."""
    for layer in cache:
        keys = getattr(layer, "keys", None)
        offset = getattr(layer, "offset", None)
        # A rotating layer below its window has written exactly ``offset`` slots (_idx).
        filled = getattr(layer, "_idx", offset) == offset
        if keys is not None and isinstance(offset, int) and offset < keys.shape[2] and filled:
            layer.keys = mx.contiguous(keys[..., :offset, :])
            layer.values = mx.contiguous(layer.values[..., :offset, :])
    mx.eval(_arrays(cache))
    return cache


def nbytes(cache: Sequence[Any]) -> int:
    return sum(a.nbytes for a in _arrays(cache))


def _clone_layer(layer: Any) -> Any:
    twin = copy.copy(layer)
    twin.__dict__.update({k: _fresh(v) for k, v in vars(layer).items()})
    return twin


def _fresh(value: Any) -> Any:
    if isinstance(value, mx.array):
        return mx.stop_gradient(value)  # a new array on the same buffer (mx.array copies)
    if isinstance(value, (list, tuple)):
        return type(value)(_fresh(v) for v in value)
    return value


def _arrays(value: Any) -> list[mx.array]:
    if isinstance(value, mx.array):
        return [value]
    if isinstance(value, (list, tuple)):
        return [a for v in value for a in _arrays(v)]
    if hasattr(value, "__dict__") and type(value).__name__ in LAYER_KINDS:
        return _arrays(list(vars(value).values()))
    return []
