"""MP4 writing and frame interpolation with PyAV (its wheels bundle ffmpeg and libx264).

Contract:
- ``write_mp4(frames, fps, target)`` encodes uint8 RGB frames ``(F, H, W, 3)`` as H.264
  (libx264, yuv420p, ``+faststart``). yuv420p needs even sizes: an odd height / width is
  padded by repeating the last row / column. A path is written atomically (a temporary file
  in the same folder, then ``os.replace``); a binary file object receives the bytes.
  ``encode_mp4`` returns the bytes.
- ``interpolate_frames(frames, fps, exp, method="auto")`` returns ``((N-1) * 2**exp + 1)``
  frames at ``fps * 2**exp``; the original frames are kept exactly at every ``2**exp``-th
  position. ``method``: ``"minterpolate"`` (ffmpeg's motion-compensated ``minterpolate``
  filter, ``mi_mode=mci``, run through PyAV's filter graph), ``"blend"`` (linear cross-fade)
  or ``"auto"`` (minterpolate when PyAV's ffmpeg has it and the frames are at least
  ``MIN_INTERPOLATION_SIDE`` pixels wide and high, else blend; an explicit ``"minterpolate"``
  on smaller frames is a ``ValueError``). Any in-between frame the filter does not deliver is
  filled by the blend.
"""

from __future__ import annotations

import os
import tempfile
from fractions import Fraction
from pathlib import Path
from typing import BinaryIO

import av
import numpy as np

INTERPOLATION_METHODS = ("auto", "minterpolate", "blend")
MIN_INTERPOLATION_SIDE = 32  # ffmpeg's minterpolate fails (EINVAL) on smaller frames


def _check_frames(frames: np.ndarray) -> np.ndarray:
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.shape[0] < 1:
        raise ValueError(f"frames must be (F, H, W, 3), got {frames.shape}")
    if frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8, got {frames.dtype}")
    return frames


def _even(frames: np.ndarray) -> np.ndarray:
    _, h, w, _ = frames.shape
    if h % 2 or w % 2:
        frames = np.pad(frames, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)), mode="edge")
    return frames


def _encode(frames: np.ndarray, fps: int | float, path: str, crf: int) -> None:
    """Encode to a named file (``+faststart`` needs to reopen it to move the index up)."""
    frames = _even(_check_frames(frames))
    rate = Fraction(fps).limit_denominator(1000)
    options = {"movflags": "+faststart"}
    with av.open(path, mode="w", format="mp4", options=options) as container:
        stream = container.add_stream("libx264", rate=rate)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": str(crf), "preset": "medium"}
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def _encode_to_temp(frames: np.ndarray, fps: int | float, folder: Path | None, crf: int) -> Path:
    fd, name = tempfile.mkstemp(prefix=".video-", suffix=".mp4.tmp", dir=folder)
    os.close(fd)
    try:
        _encode(frames, fps, name, crf)
        with open(name, "rb+") as handle:
            os.fsync(handle.fileno())
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise
    return Path(name)


def encode_mp4(frames: np.ndarray, fps: int | float, crf: int = 18) -> bytes:
    """The MP4 file as bytes."""
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    tmp = _encode_to_temp(frames, fps, None, crf)
    try:
        return tmp.read_bytes()
    finally:
        tmp.unlink(missing_ok=True)


def write_mp4(
    frames: np.ndarray, fps: int | float, target: str | os.PathLike | BinaryIO, crf: int = 18
) -> None:
    """Write an H.264 MP4 to a path (atomically) or a binary file object."""
    if not isinstance(target, (str, os.PathLike)):
        target.write(encode_mp4(frames, fps, crf))
        return
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    path = Path(target)
    tmp = _encode_to_temp(frames, fps, path.parent, crf)
    try:
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def minterpolate_available() -> bool:
    return "minterpolate" in av.filter.filters_available


def _blend(frames: np.ndarray, factor: int) -> np.ndarray:
    n = frames.shape[0]
    out = np.empty(((n - 1) * factor + 1, *frames.shape[1:]), dtype=np.uint8)
    src = frames.astype(np.float32)
    for j in range(out.shape[0]):
        i, r = divmod(j, factor)
        if r == 0:
            out[j] = frames[i]
        else:
            w = r / factor
            out[j] = np.clip(np.rint((1 - w) * src[i] + w * src[i + 1]), 0, 255).astype(np.uint8)
    return out


def _drain(graph: av.filter.Graph, sink: dict[int, np.ndarray]) -> None:
    while True:
        try:
            frame = graph.vpull()  # the graph's only sink is a video ``buffersink``
        except (av.BlockingIOError, av.EOFError):
            return
        if frame.pts is None:
            raise RuntimeError("minterpolate produced a frame without a timestamp")
        sink[frame.pts] = frame.to_ndarray(format="rgb24")


def _minterpolate(frames: np.ndarray, fps: int | float, factor: int) -> dict[int, np.ndarray]:
    """Output frames by pts (units of ``1 / (fps * factor)``) from ffmpeg's minterpolate."""
    _, h, w, _ = frames.shape
    rate = Fraction(fps).limit_denominator(1000)
    graph = av.filter.Graph()
    src = graph.add_buffer(
        width=w, height=h, format=av.VideoFormat("rgb24"), time_base=1 / rate
    )
    mi = graph.add("minterpolate", f"fps={rate * factor}:mi_mode=mci")
    src.link_to(mi)
    mi.link_to(graph.add("buffersink"))
    graph.configure()
    out: dict[int, np.ndarray] = {}
    # two repeats of the last frame let the filter emit everything up to it
    for i, frame in enumerate([*frames, frames[-1], frames[-1]]):
        video = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
        video.pts = i
        graph.push(video)
        _drain(graph, out)
    graph.push(None)
    _drain(graph, out)
    return out


def interpolate_frames(
    frames: np.ndarray, fps: int | float, exp: int, method: str = "auto"
) -> tuple[np.ndarray, float]:
    """``((N-1) * 2**exp + 1)`` frames at ``fps * 2**exp``."""
    frames = _check_frames(frames)
    if method not in INTERPOLATION_METHODS:
        raise ValueError(f"method must be one of {', '.join(INTERPOLATION_METHODS)}")
    if not 0 <= exp <= 6:
        raise ValueError(f"exp must be between 0 and 6, got {exp}")
    factor = 2**exp
    if factor == 1 or frames.shape[0] < 2:
        return frames.copy(), float(fps * factor)
    small = min(frames.shape[1:3]) < MIN_INTERPOLATION_SIDE
    if method == "minterpolate" and small:
        raise ValueError(f"minterpolate needs frames of at least {MIN_INTERPOLATION_SIDE}x"
                         f"{MIN_INTERPOLATION_SIDE}, got {frames.shape[2]}x{frames.shape[1]}")
    out = _blend(frames, factor)
    if method == "minterpolate" or (method == "auto" and not small
                                    and minterpolate_available()):
        produced = _minterpolate(frames, fps, factor)
        for j in range(out.shape[0]):
            if j % factor and j in produced and produced[j].shape == out[j].shape:
                out[j] = produced[j]
    return out, float(fps * factor)
