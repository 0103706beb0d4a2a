"""The language-model inputs of several vision prompts' next chunks, for one forward pass.

A vision prompt's ``get_input_embeddings`` gives, besides its embeddings, inputs of its own
for the language model: mRoPE ``position_ids`` and ``rope_deltas`` (Qwen-VL families),
and, for Qwen3-VL, deepstack features with the mask of the positions they are added to.
To prefill several prompts' chunks in one forward, each of these is cut to the row's
chunk, right-padded to the longest chunk and stacked, the way the text path pads token
ids (:meth:`.runner.ModelRunner.prefill_rows`). Explicit position ids make the model skip
its own position computation, which knows only one prompt.

Only the inputs named here are understood: a prompt with any other (Gemma 3's
bidirectional image mask, say) is prefilled alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ._mlx import mx

BATCHED = frozenset({"position_ids", "rope_deltas", "visual_pos_masks",
                     "deepstack_visual_embeds"})
# Read by the language model only to compute positions, which are given explicitly here.
POSITION_SOURCES = frozenset({"image_grid_thw", "video_grid_thw", "pixel_values",
                              "pixel_values_videos", "second_per_grid_ts"})


def groupable_inputs(kwargs: dict[str, Any]) -> bool:
    """Whether a prompt's language-model inputs can share a forward with other prompts'."""
    keys = set(kwargs)
    has_positions = "position_ids" in keys or "rope_deltas" in keys
    return has_positions and keys <= BATCHED | POSITION_SOURCES


@dataclass(frozen=True)
class RowChunk:
    """Positions ``[lo, lo + n)`` of one prompt; ``offset`` is its cache length before."""

    kwargs: dict[str, Any]
    lo: int
    n: int
    offset: int


def first_delta(deltas: Any) -> mx.array:
    """A model's mRoPE deltas (any shape, one per row) as the (1, 1) of its first row."""
    return mx.array(deltas).reshape(-1)[:1].reshape(1, 1)


def row_deltas(kwargs: dict[str, Any]) -> mx.array:
    """(1, 1) mRoPE offset of the prompt's decode positions (0 for plain text)."""
    deltas = kwargs.get("rope_deltas")
    return mx.zeros((1, 1), dtype=mx.int32) if deltas is None else first_delta(deltas)


def batched_inputs(rows: list[RowChunk]) -> dict[str, Any]:
    """``position_ids`` (3, B, n) and, where a row has them, the deepstack inputs."""
    longest = max(row.n for row in rows)
    positions = [_pad(_positions(row), longest, axis=1) for row in rows]
    inputs: dict[str, Any] = {"position_ids": mx.stack(positions, axis=1)}
    if any("deepstack_visual_embeds" in row.kwargs for row in rows):
        inputs.update(_deepstack(rows, longest))
    return inputs


def _positions(row: RowChunk) -> mx.array:
    """(3, n) positions of the chunk: one per mRoPE axis (text positions repeat)."""
    given = row.kwargs.get("position_ids")
    if given is None:  # a text suffix after a reused prefix: follows the cache
        delta = int(np.asarray(row.kwargs.get("rope_deltas", 0)).reshape(-1)[0])
        flat = mx.arange(row.offset + delta, row.offset + delta + row.n, dtype=mx.int32)
    else:
        cut = given[..., row.lo:row.lo + row.n].astype(mx.int32)
        if cut.ndim == 3:
            return cut[:, 0, :]
        flat = cut.reshape(row.n)
    return mx.broadcast_to(flat[None], (3, row.n))


def _deepstack(rows: list[RowChunk], longest: int) -> dict[str, Any]:
    """Qwen3-VL: each row's visual mask over its chunk, and the deepstack features of
    the visual positions in it, rows one after another (the order the model reads)."""
    masks, per_row = [], []
    for row in rows:
        mask = row.kwargs.get("visual_pos_masks")
        features = row.kwargs.get("deepstack_visual_embeds")
        if mask is None or features is None:
            masks.append(mx.zeros((longest,), dtype=mx.bool_))
            continue
        visible = np.asarray(mask[0]).astype(bool)
        columns = np.flatnonzero(visible)
        picked = np.flatnonzero((columns >= row.lo) & (columns < row.lo + row.n))
        index = mx.array(picked, dtype=mx.uint32)
        per_row.append([layer[index] for layer in features])
        masks.append(_pad(mx.array(visible[row.lo:row.lo + row.n]), longest, axis=0))
    layers = [mx.concatenate(list(parts), axis=0) for parts in zip(*per_row)]
    return {"visual_pos_masks": mx.stack(masks), "deepstack_visual_embeds": layers}


def _pad(array: mx.array, length: int, axis: int) -> mx.array:
    missing = length - array.shape[axis]
    if missing == 0:
        return array
    widths = [(0, 0)] * array.ndim
    widths[axis] = (0, missing)
    return mx.pad(array, widths)
