"""Where :class:`~vllm_mlx.stream.client.VideoStream` gets its frames: a camera, a video
file, or a synthetic test pattern.

Contract: a :class:`FrameSource` has ``read()`` (the next frame as a :class:`RawFrame`,
converted to an RGB image only when asked, so a skipped frame costs no conversion; None
when the source is finished), ``close()`` and ``live`` (True when ``read`` waits for a
device that sets its own pace, False when frames are available at once and the caller
paces them). :class:`CameraSource` opens a capture device with PyAV (``v4l2``
``/dev/videoN`` on Linux, ``avfoundation`` on macOS) and raises :class:`SourceError` with
a clear message when there is no such device. :class:`FileSource` decodes any file FFmpeg
reads (looping by default). :class:`TestPatternSource` draws a moving pattern with the
frame number as a 16-bit barcode along the top (:func:`pattern_index` reads it back).
"""

from __future__ import annotations

import platform
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import av
import numpy as np
from PIL import Image

Size = tuple[int, int]  # (width, height)
BARCODE_BITS = 16


class SourceError(RuntimeError):
    """A frame source that cannot be opened or read."""


class RawFrame(Protocol):
    def to_image(self) -> Image.Image: ...


class FrameSource(Protocol):
    live: bool

    def read(self) -> RawFrame | None: ...

    def close(self) -> None: ...


class _AVFrame:
    def __init__(self, frame: av.VideoFrame, size: Size | None) -> None:
        self.frame = frame
        self.size = size

    def to_image(self) -> Image.Image:
        if self.size is None:
            return self.frame.to_image()
        return self.frame.to_image(width=self.size[0], height=self.size[1])


class _ArrayFrame:
    def __init__(self, array: np.ndarray) -> None:
        self.array = array

    def to_image(self) -> Image.Image:
        return Image.fromarray(self.array)


def camera_device(index: int) -> tuple[str, str]:
    """PyAV's (file, format) for camera ``index`` on this platform."""
    system = platform.system()
    if system == "Linux":
        return f"/dev/video{index}", "v4l2"
    if system == "Darwin":
        return f"{index}:none", "avfoundation"
    raise SourceError(f"camera capture is supported on Linux (v4l2) and macOS "
                      f"(avfoundation), not {system}; stream a --file instead")


class _PyAVSource:
    live = False

    def __init__(self, container: av.container.InputContainer, size: Size | None) -> None:
        self.container = container
        self.size = size
        if not container.streams.video:
            container.close()
            raise SourceError(f"{container.name} has no video stream")
        self.stream = container.streams.video[0]
        self.stream.thread_type = "AUTO"
        self._frames: Iterator[av.VideoFrame] = container.decode(self.stream)

    def _next(self) -> av.VideoFrame | None:
        try:
            return next(self._frames, None)
        except av.error.FFmpegError as exc:
            raise SourceError(f"could not decode {self.container.name}: {exc}") from exc

    def read(self) -> RawFrame | None:
        frame = self._next()
        return None if frame is None else _AVFrame(frame, self.size)

    def close(self) -> None:
        self.container.close()


class CameraSource(_PyAVSource):
    live = True

    def __init__(self, device_index: int = 0, resolution: Size = (640, 480),
                 fps: float = 30) -> None:
        file, fmt = camera_device(device_index)
        if fmt == "v4l2" and not Path(file).exists():
            raise SourceError(f"no camera at {file} (device_index={device_index}): connect "
                              "one, pick another index, or stream a file or test pattern")
        options = {"video_size": f"{resolution[0]}x{resolution[1]}", "framerate": f"{fps:g}"}
        try:
            container = av.open(file, format=fmt, options=options)
        except (av.error.FFmpegError, OSError) as exc:
            raise SourceError(f"could not open camera {file} ({fmt}): {exc}") from exc
        super().__init__(container, resolution)


class FileSource(_PyAVSource):
    """Frames of a video file, scaled to ``resolution``; loops back at the end."""

    def __init__(self, path: str | Path, resolution: Size | None = (640, 480),
                 loop: bool = True) -> None:
        try:
            container = av.open(str(path))
        except (av.error.FFmpegError, OSError) as exc:
            raise SourceError(f"could not open video file {path}: {exc}") from exc
        super().__init__(container, resolution)
        self.loop = loop

    def read(self) -> RawFrame | None:
        frame = self._next()
        if frame is None and self.loop:
            self.container.seek(0)
            self._frames = self.container.decode(self.stream)
            frame = self._next()
        return None if frame is None else _AVFrame(frame, self.size)


def _barcode(frame: np.ndarray, index: int) -> None:
    height, width = frame.shape[:2]
    band, cell = max(height // 12, 2), width // BARCODE_BITS
    for bit in range(BARCODE_BITS):
        frame[:band, bit * cell:(bit + 1) * cell] = 240 if (index >> bit) & 1 else 16


def pattern_index(image: Image.Image | np.ndarray) -> int:
    """The frame number a :class:`TestPatternSource` frame carries (survives JPEG)."""
    frame = np.asarray(image)
    height, width = frame.shape[:2]
    band, cell = max(height // 12, 2), width // BARCODE_BITS
    rows = frame[band // 4:max(band * 3 // 4, band // 4 + 1)]
    return sum(1 << bit for bit in range(BARCODE_BITS)
               if rows[:, bit * cell + cell // 4:bit * cell + 3 * cell // 4 + 1].mean() > 128)


class TestPatternSource:
    """A synthetic moving pattern: colour ramps that scroll, a bouncing square, a barcode."""

    live = False
    __test__ = False  # not a pytest class

    def __init__(self, resolution: Size = (640, 480), frames: int | None = None) -> None:
        width, height = resolution
        self.size = resolution
        self.limit = frames
        self.index = 0
        x = np.linspace(0, 255, 2 * width, dtype=np.float32)
        y = np.linspace(0, 255, height, dtype=np.float32)[:, None]
        self._ramp = np.stack(np.broadcast_arrays((x[None, :] + 0 * y) % 256, y + 0 * x,
                                                  (x[None, :] + y) % 256), -1).astype(np.uint8)

    def read(self) -> RawFrame | None:
        if self.limit is not None and self.index >= self.limit:
            return None
        width, height = self.size
        shift = (self.index * 8) % width
        frame = self._ramp[:, shift:shift + width].copy()
        side = max(min(width, height) // 6, 4)
        x = (self.index * 11) % max(width - side, 1)
        y = (self.index * 7) % max(height - side, 1)
        frame[y:y + side, x:x + side] = (255, 255, 255)
        _barcode(frame, self.index)
        self.index += 1
        return _ArrayFrame(frame)

    def close(self) -> None:
        self.limit = self.index
