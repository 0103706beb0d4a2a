"""Frames resized ahead of time, on the stream's worker threads, to the size the model's
processor would resize them to anyway.

Contract: :meth:`FrameSizer.target` gives the (width, height) that the served model's
processor resizes a ``width`` x ``height`` frame to, inside a video clip of ``frames``
frames (``kind`` "video") or as a single image (``kind`` "image"); None when it cannot
tell, or when resizing first would change what the model sees. :func:`presize` makes that
resize (Pillow bicubic, the processor's own method). The processor then finds each frame
already at its size and leaves it as it is, so the model's input is bit-identical, while
the engine's thread skips the resize and hashes and copies far fewer pixels (and a
connection's window holds far less memory).

How a target is learned, once per (kind, frames, width, height): the processor is run on
seeded noise of that shape, the size is read from its grid output (the Qwen-VL families:
``grid_h * patch_size`` by ``grid_w * patch_size``), the noise is presized to it and run
again, and the target is kept only if both outputs are equal, array for array. Processors
without a grid output (e.g. Gemma 3's fixed square) get None: their frames go full-size,
as before. Learning is bounded, since clients choose frame sizes: one shape at a time
(a caller that may not wait for it gets None), only frames of at most ``max_pixels``,
and at most :data:`MAX_SHAPES` shapes per sizer (later new shapes get None). Thread-safe.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from typing import Any, Literal

import numpy as np
from PIL import Image

logger = logging.getLogger(__name__)

Kind = Literal["video", "image"]
Size = tuple[int, int]  # (width, height)
Key = tuple[str, int, int, int]
MAX_SHAPES = 64
_GRIDS = {"video": "video_grid_thw", "image": "image_grid_thw"}


def presize(image: Image.Image, size: Size) -> Image.Image:
    """``image`` at ``size``, resized the way the Qwen-VL processors resize."""
    if image.size == size:
        return image
    return image.resize(size, Image.Resampling.BICUBIC)


def _as_numpy(outputs: Mapping[str, Any]) -> dict[str, np.ndarray]:
    return {name: np.asarray(value) for name, value in outputs.items()
            if value is not None and not isinstance(value, (str, list, dict))}


class FrameSizer:
    """The processor's target frame sizes, learned and checked once per frame shape."""

    def __init__(self, processor: Any, max_pixels: int = 1280 * 720) -> None:
        video = getattr(processor, "video_processor", None)
        image = getattr(processor, "image_processor", None)
        self._processors: dict[str, Any] = {"video": video or image, "image": image}
        self.max_pixels = max_pixels
        self._table: dict[Key, Size | None] = {}
        self._table_lock = threading.Lock()  # held only to read or write the table
        self._learn_lock = threading.Lock()  # one calibration at a time

    def known(self, kind: Kind, frames: int, width: int, height: int) -> bool:
        """Whether :meth:`target` answers at once (learned before) for this shape."""
        with self._table_lock:
            return self._key(kind, frames, width, height) in self._table

    @staticmethod
    def _key(kind: Kind, frames: int, width: int, height: int) -> Key:
        return (kind, frames if kind == "video" else 1, width, height)

    def _lookup(self, key: Key) -> tuple[bool, Size | None]:
        with self._table_lock:
            return key in self._table, self._table.get(key)

    def target(self, kind: Kind, frames: int, width: int, height: int, wait: bool = True
               ) -> Size | None:
        """The processor's size for this frame, or None (send it as it is). The first
        time for a shape it runs the processor twice: call it off the event loop. While
        another shape is being learned: wait, or (``wait=False``) answer None at once."""
        key = self._key(kind, frames, width, height)
        found, size = self._lookup(key)
        if found or width * height > self.max_pixels or len(self._table) >= MAX_SHAPES:
            return size
        if not self._learn_lock.acquire(blocking=wait):
            return None
        try:
            found, size = self._lookup(key)  # learned while this thread got here?
            if not found:
                size = self._learn(*key)
                with self._table_lock:
                    self._table[key] = size
            return size
        finally:
            self._learn_lock.release()

    def _run(self, kind: str, clip: np.ndarray) -> dict[str, np.ndarray]:
        """The processor's arrays for a (T, H, W, 3) uint8 clip (one image: T == 1)."""
        processor = self._processors[kind]
        if kind == "video":  # (T, C, H, W), as the engine hands videos over
            return _as_numpy(processor(videos=[clip.transpose(0, 3, 1, 2)]))
        return _as_numpy(processor(images=[Image.fromarray(clip[0])]))

    def _learn(self, kind: str, frames: int, width: int, height: int) -> Size | None:
        processor = self._processors[kind]
        grid_name = _GRIDS[kind]
        patch = getattr(processor, "patch_size", None)
        if processor is None or not isinstance(patch, int):
            return None
        noise = np.random.default_rng(0).integers(0, 256, (frames, height, width, 3),
                                                  dtype=np.uint8)
        try:
            full = self._run(kind, noise)
            grid = full.get(grid_name)
            if grid is None or grid.shape[0] != 1:
                return None
            size = (int(grid[0][2]) * patch, int(grid[0][1]) * patch)
            small = np.stack([np.asarray(presize(Image.fromarray(f), size)) for f in noise])
            again = self._run(kind, small)
        except Exception as exc:  # the processor refuses this shape: leave frames alone
            logger.debug("no presize for %s %dx%d x%d: %s", kind, width, height, frames, exc)
            return None
        same = full.keys() == again.keys() and all(
            full[k].shape == again[k].shape and np.array_equal(full[k], again[k]) for k in full)
        if not same:
            logger.info("presizing %s frames of %dx%d would change the model input; "
                        "sending them full-size", kind, width, height)
            return None
        return size
