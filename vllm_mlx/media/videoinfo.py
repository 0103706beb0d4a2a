"""Open video containers with PyAV and read what their headers say.

Contract:

* :func:`video_input` turns ``MediaBytes | bytes | str | Path`` into bytes or a local path
  (strings and paths go through :func:`load_source_sync` under the policy); no temp files.
* :func:`open_video` opens a container (from memory via ``io.BytesIO`` or from the path) and
  returns it with its first video stream; anything that is not a video container, a still
  image (``jpeg_pipe``, ``png_pipe``... demuxers) or a container without a video stream
  (audio-only mp4) raises :class:`InvalidVideo`.
* :func:`read_info` reads duration, frame rate and size from the header and enforces
  ``policy.max_video_frame_pixels`` and ``policy.max_video_duration_s`` (a header claiming
  more is not trusted: :class:`MediaTooLarge`). Duration comes from the stream
  (``duration * time_base``), else the container; ``None`` when neither has one, in which
  case :func:`measure_duration` finds it from packet timestamps (demuxing only, no decoding).
* :func:`probe_video` is the public one-call summary.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path

import av
from av.container import InputContainer
from av.video.stream import VideoStream

from .errors import InvalidVideo, MediaTooLarge
from .fetch import MediaBytes, load_source_sync
from .policy import DEFAULT_POLICY, MediaPolicy
from .sniff import is_pdf

__all__ = ["VideoInfo", "measure_duration", "open_video", "probe_video", "read_info", "video_input"]

VideoData = bytes | Path
_IMAGE_DEMUXERS = ("image2",)


@dataclass(frozen=True)
class VideoInfo:
    """Header facts about a video's first video stream.

    ``duration`` is None when the header has none; ``duration_source`` says where it came
    from: ``"stream"`` (exact in most containers), ``"container"`` (may be an estimate),
    ``"measured"`` (packet timestamps) or None.
    """

    duration: float | None
    duration_source: str | None
    source_fps: float
    width: int
    height: int
    codec: str
    time_base: Fraction
    start_pts: int | None
    origin: str


def video_input(
    media: MediaBytes | bytes | str | Path, policy: MediaPolicy
) -> tuple[VideoData, str]:
    """``(bytes or path, origin)`` for any accepted video input."""
    if isinstance(media, str | Path):
        media = load_source_sync(media, kind="video", policy=policy)
    if isinstance(media, MediaBytes):
        if media.path is not None:
            return media.path, media.origin
        assert media.data is not None
        media_data, origin = media.data, media.origin
    else:
        media_data, origin = bytes(media), f"video ({len(media)} bytes)"
    if len(media_data) > policy.max_video_bytes:
        raise MediaTooLarge(
            f"{origin} is {len(media_data)} bytes, over this server's limit of "
            f"{policy.max_video_bytes} bytes."
        )
    return media_data, origin


def _is_still_image(container: InputContainer) -> bool:
    name = container.format.name
    return name.endswith("_pipe") or name in _IMAGE_DEMUXERS


def _first_video_stream(container: InputContainer, origin: str) -> VideoStream:
    if _is_still_image(container):
        raise InvalidVideo(
            f"{origin} is a still image ({container.format.name}), not a video. Send images "
            "as image_url parts."
        )
    if not container.streams.video:
        found = ", ".join(sorted({str(s.type) for s in container.streams})) or "none"
        raise InvalidVideo(f"{origin} contains no video stream (streams found: {found}).")
    stream = container.streams.video[0]
    if stream.codec_context is None or stream.time_base is None:
        raise InvalidVideo(f"{origin}: the video stream's codec is not supported.")
    return stream


def _is_pdf(data: VideoData) -> bool:
    """PDFs with JPEG pages probe as MJPEG streams, so they are recognised first."""
    try:
        if isinstance(data, bytes):
            head = data[:1024]
        else:
            with open(data, "rb") as fh:
                head = fh.read(1024)
    except OSError:
        return False  # av.open reports it
    return is_pdf(head)


def open_video(data: VideoData, origin: str) -> tuple[InputContainer, VideoStream]:
    """Open ``data`` and return ``(container, first video stream)``; caller closes."""
    if _is_pdf(data):
        raise InvalidVideo(f"{origin} is a PDF document, not a video.")
    source = io.BytesIO(data) if isinstance(data, bytes) else str(data)
    try:
        container = av.open(source, mode="r", metadata_errors="ignore")
    except (av.FFmpegError, OSError, ValueError, UnicodeDecodeError) as exc:
        raise InvalidVideo(
            f"{origin} is not a readable video: the data is empty, corrupt, truncated or in an "
            f"unknown format ({exc})."
        ) from exc
    try:
        return container, _first_video_stream(container, origin)
    except BaseException:
        container.close()
        raise


def _header_duration(
    container: InputContainer, stream: VideoStream
) -> tuple[float | None, str | None]:
    if stream.duration and stream.time_base:
        seconds, source = float(stream.duration * stream.time_base), "stream"
    elif container.duration:
        seconds, source = container.duration / av.time_base, "container"
    else:
        return None, None
    return (seconds, source) if math.isfinite(seconds) and seconds > 0 else (None, None)


def _rate(stream: VideoStream) -> float:
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate and float(rate) > 0 and math.isfinite(float(rate)):
            return float(rate)
    return 0.0


def check_duration(duration: float, origin: str, policy: MediaPolicy) -> None:
    """Raise :class:`MediaTooLarge` when ``duration`` is over the policy's limit."""
    if duration > policy.max_video_duration_s:
        raise MediaTooLarge(
            f"{origin} claims a duration of {duration:.0f} s, over this server's limit of "
            f"{policy.max_video_duration_s:.0f} s. Trim the video before sending."
        )


def check_frame_pixels(width: int, height: int, origin: str, policy: MediaPolicy) -> None:
    """Raise :class:`MediaTooLarge` when one frame has too many pixels."""
    if width * height > policy.max_video_frame_pixels:
        raise MediaTooLarge(
            f"{origin} has {width}x{height} frames, over this server's limit of "
            f"{policy.max_video_frame_pixels} pixels per frame. Downscale it before sending."
        )


def read_info(
    container: InputContainer, stream: VideoStream, origin: str, policy: MediaPolicy
) -> VideoInfo:
    """Header facts, with size and duration limits enforced."""
    ctx = stream.codec_context
    check_frame_pixels(ctx.width, ctx.height, origin, policy)
    duration, duration_source = _header_duration(container, stream)
    if duration is not None:
        check_duration(duration, origin, policy)
    assert stream.time_base is not None
    return VideoInfo(
        duration=duration,
        duration_source=duration_source,
        source_fps=_rate(stream),
        width=ctx.width,
        height=ctx.height,
        codec=ctx.name,
        time_base=stream.time_base,
        start_pts=stream.start_time,
        origin=origin,
    )


def measure_duration(container: InputContainer, stream: VideoStream, info: VideoInfo) -> float:
    """Duration from packet timestamps (demux only); raises :class:`InvalidVideo` if none."""
    first: int | None = info.start_pts
    last_end: int | None = None
    packets = 0
    try:
        for packet in container.demux(stream):
            if packet.size == 0:
                continue
            packets += 1
            if packet.pts is None:
                continue
            first = packet.pts if first is None else min(first, packet.pts)
            end = packet.pts + (packet.duration or 0)
            last_end = end if last_end is None else max(last_end, end)
    except av.FFmpegError as exc:
        raise InvalidVideo(f"{info.origin} is corrupt: {exc}.") from exc
    fps = info.source_fps or 25.0
    if last_end is None or first is None:
        if packets == 0:
            raise InvalidVideo(f"{info.origin} contains no video frames.")
        return packets / fps
    seconds = float((last_end - first) * info.time_base)
    return seconds if seconds > 0 else packets / fps


def probe_video(
    media: MediaBytes | bytes | str | Path, *, policy: MediaPolicy = DEFAULT_POLICY
) -> VideoInfo:
    """Header summary of a video; the duration is measured when the header has none."""
    data, origin = video_input(media, policy)
    container, stream = open_video(data, origin)
    with container:
        info = read_info(container, stream, origin, policy)
        if info.duration is None:
            measured = measure_duration(container, stream, info)
            info = replace(info, duration=measured, duration_source="measured")
            check_duration(info.duration or 0.0, origin, policy)
    return info
