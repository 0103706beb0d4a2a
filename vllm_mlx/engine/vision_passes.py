"""One vision-tower pass per image (and per short run of video frames), spread over steps.

A request with several images or a long video must not hold up the running batch for
its whole vision encoding. :class:`SplitTower` stands in for a model's ``vision_tower``
during ``get_input_embeddings``: it calls the real tower once per piece and hands the
model the concatenation, so the family's own projection and merge run unchanged. MLX is
lazy, so nothing is computed yet; the scheduler evaluates one piece per step
(:meth:`SplitTower.pieces`), and the prefill's first chunk finds them all done.

Pieces, by how the tower is called:
- Qwen-VL families, ``tower(pixels (N, C), grid_thw (n, 3), ...)``: one piece per image;
  a video is cut along its temporal patches into pieces of at most
  ``video_patches_per_pass``. The towers attend within one temporal patch (Qwen2-VL,
  Qwen3-VL) or within windows of it (Qwen2.5-VL), and patches are stored time-major, so
  a piece's rows are contiguous and its features equal those of the joint pass.
- Towers over a batch of images, ``tower(images (n, H, W, C), ...)`` (Gemma 3's SigLIP):
  one piece per image.
Any other call, Pixtral's (``image_sizes``: its images packed into one sequence) and
keyword-only ones included (mllama: ``tower(pixel_values=...,
aspect_ratio_ids=..., aspect_ratio_mask=...)``), is passed through as one piece.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from ._mlx import mx


@contextmanager
def shadowed(obj: Any, name: str, value: Any) -> Iterator[None]:
    """Make ``obj.name`` read ``value`` inside the block (an instance attribute in front of
    the module's child of that name); nested shadows unwind in order."""
    previous = obj.__dict__.get(name, _ABSENT)
    object.__setattr__(obj, name, value)
    try:
        yield
    finally:
        if previous is _ABSENT:
            object.__delattr__(obj, name)
        else:
            object.__setattr__(obj, name, previous)


_ABSENT = object()


def evaluate(piece: Any) -> None:
    """Compute one pass's output (arrays anywhere in a tuple or list)."""
    leaves: list[mx.array] = []
    _collect(piece, leaves)
    mx.eval(leaves)


def _collect(value: Any, into: list[mx.array]) -> None:
    if isinstance(value, mx.array):
        into.append(value)
    elif isinstance(value, (list, tuple)):
        for item in value:
            _collect(item, into)


class SplitTower:
    def __init__(self, tower: Any, video_patches_per_pass: int = 4) -> None:
        self._tower = tower
        self._step = max(1, video_patches_per_pass)
        self._pieces: list[Any] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._tower, name)

    @property
    def pieces(self) -> list[Any]:
        """The lazy outputs of each pass, in order; evaluate one per step."""
        return self._pieces

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        # Pixtral's tower packs its images into one sequence, sized by ``image_sizes``.
        joint = not args or "image_sizes" in kwargs
        calls = None if joint else _split_calls(args[0], args[1:], self._step)
        if calls is None:
            out = self._tower(*args, **kwargs)
            self._pieces.append(out)
            return out
        outs = [self._tower(p, *a, **kwargs) for p, a in calls]
        self._pieces.extend(outs)
        return _concatenate(outs)


def _split_calls(pixels: Any, args: tuple[Any, ...], step: int
                 ) -> list[tuple[Any, tuple[Any, ...]]] | None:
    if not isinstance(pixels, mx.array):
        return None
    grid = args[0] if args else None
    if isinstance(grid, mx.array) and grid.ndim == 2 and grid.shape[1] == 3:
        return _split_by_grid(pixels, grid, args[1:], step)
    if pixels.ndim == 4 and pixels.shape[0] > 1 and not args:
        return [(pixels[i:i + 1], ()) for i in range(pixels.shape[0])]
    return None


def _split_by_grid(pixels: mx.array, grid: mx.array, rest: tuple[Any, ...], step: int
                   ) -> list[tuple[Any, tuple[Any, ...]]] | None:
    rows = [tuple(row) for row in np.asarray(grid, dtype=np.int64).tolist()]
    if sum(t * h * w for t, h, w in rows) != pixels.shape[0]:
        return None  # not the layout this split assumes: one joint pass
    calls, offset = [], 0
    for t, h, w in rows:
        for start in range(0, t, step):
            frames = min(step, t - start)
            size = frames * h * w
            piece_grid = mx.array([[frames, h, w]], dtype=grid.dtype)
            calls.append((pixels[offset:offset + size], (piece_grid, *rest)))
            offset += size
    return calls if len(calls) > 1 else None


def _concatenate(outs: list[Any]) -> Any:
    first = outs[0]
    if isinstance(first, mx.array):
        return mx.concatenate(outs, axis=0)
    if isinstance(first, (list, tuple)):
        joined = [_concatenate([o[i] for o in outs]) for i in range(len(first))]
        return type(first)(joined)
    return first  # None and other per-call values
