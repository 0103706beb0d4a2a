"""The video frame sampler: one forward decoding pass, frames chosen by presentation time.

Contract of :func:`sample_video` (semantics in :mod:`.sampling`):

* duration: stream header, else container header, else measured from packet timestamps
  (demux only). A header longer than ``policy.max_video_duration_s`` is refused
  (:class:`MediaTooLarge`). If the frames end before the header's duration by more than half a
  sampling interval: with a stream duration (exact, e.g. mp4) the file is truncated
  (:class:`InvalidVideo`); with a container duration (possibly an estimate) the clip is
  sampled again, once, with the measured duration.
* ``n = clamp(ceil(duration * fps), min_frames, max_frames)``, wanted times are segment
  centres, and each is served by the frame shown at that time, from ``frame.pts * time_base``
  relative to the stream's start, so variable frame rate works.
* one ``container.decode`` pass (``thread_type="AUTO"``), no seeking, stopped as soon as the
  last wanted time is passed; only chosen frames are converted (``rgb24``, optionally
  downscaled so the longer side is ``<= max_side``) and the display rotation is applied.
  Input is decoded from memory (``io.BytesIO``) or read in place from a path: no temp files.
* errors: :class:`InvalidVideo` (not a video, no video stream, corrupt, no decodable frame),
  :class:`MediaTooLarge` (pixels per frame, frames decoded, duration),
  :class:`InvalidMediaParameter` (``fps <= 0``, ``max_frames < 1``, ``max_side < 1``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import av
import numpy as np
from av.container import InputContainer
from av.video.frame import VideoFrame
from av.video.stream import VideoStream
from PIL import Image

from .errors import InvalidMediaParameter, InvalidVideo, MediaTooLarge
from .fetch import MediaBytes
from .policy import DEFAULT_POLICY, MediaPolicy
from .sampling import FramePicker, frame_count, sample_times, validate_sampling
from .videoinfo import (
    VideoData,
    VideoInfo,
    check_duration,
    check_frame_pixels,
    measure_duration,
    open_video,
    read_info,
    video_input,
)

__all__ = ["SampledVideo", "sample_video"]

_Decoded = tuple[int, VideoFrame, float]  # (decode index, frame, seconds from start)


@dataclass
class SampledVideo:
    """Frames sampled from a video.

    ``frames`` is ``(T, H, W, 3)`` uint8 RGB; ``timestamps`` are the wanted times ``t_i``;
    ``frame_times`` the presentation times of the frames chosen for them; ``frame_indices``
    their indices in decode order. ``width``/``height`` describe the source as displayed
    (rotation applied, before ``max_side`` downscaling).
    """

    frames: np.ndarray
    timestamps: list[float]
    frame_indices: list[int]
    duration: float
    source_fps: float
    width: int
    height: int
    requested_fps: float
    origin: str
    frame_times: list[float] = field(default_factory=list)

    @property
    def sampled_fps(self) -> float:
        """Frames kept per second of video."""
        if self.duration > 0:
            return len(self.timestamps) / self.duration
        return self.requested_fps

    def to_pil(self) -> list[Image.Image]:
        """The frames as RGB PIL images."""
        return [Image.fromarray(frame, mode="RGB") for frame in self.frames]


class _Clock:
    """Seconds from the stream start for each decoded frame."""

    def __init__(self, info: VideoInfo) -> None:
        self._start = info.start_pts
        self._time_base = info.time_base
        self._step = 1.0 / info.source_fps if info.source_fps > 0 else 0.0
        self._shown_for = self._step
        self.last = 0.0

    def time(self, frame: VideoFrame) -> float:
        shown_for = getattr(frame, "duration", None)  # PyAV >= 13
        self._shown_for = float(shown_for * self._time_base) if shown_for else self._step
        if frame.pts is None:
            self.last += self._step
            return self.last
        if self._start is None:
            self._start = frame.pts
        self.last = float((frame.pts - self._start) * self._time_base)
        return self.last

    def end(self) -> float:
        """Where the last decoded frame stops being shown."""
        return self.last + self._shown_for


class _Converter:
    """Converts chosen frames to arrays of one shape; converts each frame at most once."""

    def __init__(self, size: tuple[int, int] | None) -> None:
        self._size = size
        self._last: tuple[int, np.ndarray] | None = None
        self.rotation = 0

    def __call__(self, index: int, frame: VideoFrame) -> np.ndarray:
        if self._last is not None and self._last[0] == index:
            return self._last[1]
        width, height = self._size or (frame.width, frame.height)
        array: np.ndarray = frame.to_ndarray(format="rgb24", width=width, height=height)
        self.rotation = round(getattr(frame, "rotation", 0) / 90) % 4  # PyAV >= 13
        if self.rotation:
            array = np.ascontiguousarray(np.rot90(array, k=self.rotation))
        self._last = (index, array)
        return array


@dataclass
class _Pass:
    """What one decoding pass chose, and whether the header overstated the duration."""

    arrays: list[np.ndarray] = field(default_factory=list)
    indices: list[int] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    overrun: bool = False
    end: float = 0.0

    def add(self, array: np.ndarray, item: _Decoded, count: int) -> None:
        self.arrays.extend([array] * count)
        self.indices.extend([item[0]] * count)
        self.times.extend([item[2]] * count)


def _target_size(width: int, height: int, max_side: int | None) -> tuple[int, int] | None:
    if width <= 0 or height <= 0:
        return None
    if max_side is None or max(width, height) <= max_side:
        return width, height
    scale = max_side / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def _check_frame(index: int, frame: VideoFrame, info: VideoInfo, policy: MediaPolicy) -> None:
    if index >= policy.max_video_frames_decoded:
        raise MediaTooLarge(
            f"{info.origin} has more than {policy.max_video_frames_decoded} frames in the "
            "sampled range, over this server's limit."
        )
    if frame.width != info.width or frame.height != info.height:
        check_frame_pixels(frame.width, frame.height, info.origin, policy)


def _decode_pass(
    container: InputContainer,
    stream: VideoStream,
    info: VideoInfo,
    wanted: list[float],
    convert: _Converter,
    policy: MediaPolicy,
) -> _Pass:
    stream.thread_type = "AUTO"
    picker, clock, result = FramePicker(wanted), _Clock(info), _Pass()
    previous: _Decoded | None = None
    try:
        for index, frame in enumerate(container.decode(stream)):
            _check_frame(index, frame, info, policy)
            current = (index, frame, clock.time(frame))
            settled = picker.settle(current[2])
            if settled:
                owner = current if previous is None else previous
                result.add(convert(owner[0], owner[1]), owner, settled)
            if picker.done:
                return result
            previous = current
    except av.FFmpegError as exc:
        raise InvalidVideo(
            f"{info.origin} is corrupt or truncated: decoding failed near {clock.last:.2f} s "
            f"({exc})."
        ) from exc
    if previous is None:
        raise InvalidVideo(f"{info.origin} contains no decodable video frames.")
    result.end = clock.end()
    result.overrun = picker.remaining > 0 and wanted[-1] > result.end
    result.add(convert(previous[0], previous[1]), previous, picker.remaining)
    return result


def _validate_max_side(max_side: int | None) -> None:
    if max_side is not None and (not isinstance(max_side, int) or max_side < 1):
        raise InvalidMediaParameter(f"max_side must be an integer >= 1, got {max_side!r}.")


@dataclass(frozen=True)
class _Params:
    fps: float
    max_frames: int
    min_frames: int
    max_side: int | None


def _sample_pass(
    data: VideoData, origin: str, duration: float | None, params: _Params, policy: MediaPolicy
) -> tuple[VideoInfo, float, _Pass | None, int]:
    """Open once and decode; with no known duration, measure it instead (no pass)."""
    container, stream = open_video(data, origin)
    with container:
        info = read_info(container, stream, origin, policy)
        duration = duration or info.duration
        if duration is None:
            measured = measure_duration(container, stream, info)
            check_duration(measured, origin, policy)
            return info, measured, None, 0
        count = frame_count(
            duration, params.fps, max_frames=params.max_frames, min_frames=params.min_frames
        )
        convert = _Converter(_target_size(info.width, info.height, params.max_side))
        wanted = sample_times(duration, count)
        result = _decode_pass(container, stream, info, wanted, convert, policy)
        return info, duration, result, convert.rotation


def sample_video(
    media: MediaBytes | bytes | str | Path,
    *,
    fps: float = 2.0,
    max_frames: int = 64,
    min_frames: int = 1,
    max_side: int | None = None,
    policy: MediaPolicy = DEFAULT_POLICY,
) -> SampledVideo:
    """Sample ``min(max_frames, max(min_frames, ceil(duration * fps)))`` frames from a video."""
    validate_sampling(fps, max_frames, min_frames)
    _validate_max_side(max_side)
    params = _Params(float(fps), int(max_frames), int(min_frames), max_side)
    data, origin = video_input(media, policy)
    info, duration, result, rotation = _sample_pass(data, origin, None, params, policy)
    if result is None:  # no duration in the header: it was measured by demuxing
        info, duration, result, rotation = _sample_pass(data, origin, duration, params, policy)
    if result is not None and result.overrun:  # frames end before the header's duration
        if info.duration_source == "stream":
            raise InvalidVideo(
                f"{origin} is truncated: its frames end at {result.end:.2f} s but its header "
                f"says it lasts {duration:.2f} s."
            )
        info, duration, result, rotation = _sample_pass(data, origin, result.end, params, policy)
    assert result is not None
    width, height = (info.height, info.width) if rotation % 2 else (info.width, info.height)
    return SampledVideo(
        frames=np.stack(result.arrays),
        timestamps=sample_times(duration, len(result.arrays)),
        frame_indices=result.indices,
        duration=duration,
        source_fps=info.source_fps,
        width=width,
        height=height,
        requested_fps=params.fps,
        origin=origin,
        frame_times=result.times,
    )
