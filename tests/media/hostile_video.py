"""The hostile video part of the corpus (see :mod:`tests.media.hostile`), built with PyAV.

Contract: :func:`video_items` returns :class:`~tests.media.hostile.Item` values for a valid
barcode clip ``clip`` (:func:`vllm_mlx.media.testing.write_test_video`, moov at the end):

* a broken ``moov`` (cut off, cut in the middle, renamed, sample tables claiming 2^31
  entries, chunk offsets past the end of the file);
* zero frames: an mp4 with a video track and no samples, a Matroska file with a video track
  and no packets, an mp4 with no track at all;
* hours-long durations: a 10 h gap between two frames' timestamps (mp4), a Matroska header
  claiming 10 h (both over the 4 h limit: 413), and one claiming 3 h over a 2 s clip (under
  the limit: re-measured, valid);
* audio only (AAC in mp4).

:func:`vfr_clip` is a valid variable-frame-rate clip; :func:`shown_frames` says which of its
frames are on screen at given times, independently of the sampler.
"""

from __future__ import annotations

import io
import struct
from fractions import Fraction

import av
import numpy as np

from tests.media.hostile import Item
from vllm_mlx.media.testing import frame_schedule, write_test_audio, write_test_video

SIZE = (64, 48)
TOO_LONG = r"duration of 36000 s"


def _box(data: bytes, kind: bytes) -> int:
    """Offset of the first ``kind`` box (its size field)."""
    at = data.find(kind)
    assert at >= 4, kind
    return at - 4


def _with_u32(data: bytes, *patches: tuple[int, int]) -> bytes:
    out = bytearray(data)
    for offset, value in patches:
        out[offset : offset + 4] = struct.pack(">I", value)
    return bytes(out)


def _without_samples(clip: bytes) -> bytes:
    """The clip with every sample table emptied: a video track with zero frames."""
    counts = {b"stsz": 16, b"stts": 12, b"stsc": 12, b"stco": 12, b"stss": 12, b"ctts": 12}
    return _with_u32(clip, *((_box(clip, kind) + at, 0) for kind, at in counts.items()))


def _frames(count: int) -> list[av.VideoFrame]:
    return [av.VideoFrame.from_ndarray(np.full((SIZE[1], SIZE[0], 3), (40 * i) % 256, np.uint8),
                                       format="rgb24") for i in range(count)]


def _encode(fmt: str, pts: list[int], rate: int = 10) -> bytes:
    buf = io.BytesIO()
    with av.open(buf, "w", format=fmt) as container:
        stream = container.add_stream("libx264", rate=rate)
        stream.width, stream.height, stream.pix_fmt = *SIZE, "yuv420p"
        stream.codec_context.time_base = Fraction(1, rate)
        container.start_encoding()  # write the header even when no frame follows
        for frame, tick in zip(_frames(len(pts)), pts):
            frame.pts, frame.time_base = tick, Fraction(1, rate)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return buf.getvalue()


def pts_gap_mp4(hours: float) -> bytes:
    """Three frames, the last ``hours`` after the others: the track lasts that long."""
    return _encode("mp4", [0, 1, int(hours * 3600 * 10)])


def mkv_claiming(seconds: float) -> bytes:
    """A 2 s Matroska clip whose segment header claims ``seconds``."""
    data = bytearray(_encode("matroska", list(range(20))))
    at = data.find(b"\x44\x89\x88")  # EBML Duration element, 8-byte float, in milliseconds
    data[at + 3 : at + 11] = struct.pack(">d", seconds * 1000.0)
    return bytes(data)


def _bad(name: str, data: bytes, words: str = "readable|no video stream|no decodable") -> Item:
    return Item(name, "video", data, "video/mp4", 400, words, "invalid_video", ".mp4")


def video_items(clip: bytes) -> list[Item]:
    moov, stsz = _box(clip, b"moov"), _box(clip, b"stsz")
    renamed = bytearray(clip)
    renamed[moov + 4 : moov + 8] = b"moox"
    audio = write_test_audio(None, seconds=0.5)
    assert isinstance(audio, bytes)
    return [
        _bad("mp4-cut-before-moov", clip[:moov]),
        _bad("mp4-cut-inside-moov", clip[: moov + 300]),
        _bad("mp4-moov-renamed", bytes(renamed)),
        _bad("mp4-moov-sample-count-2^31", _with_u32(clip, (stsz + 16, 0x7FFFFFFF))),
        _bad("mp4-moov-time-table-2^31", _with_u32(clip, (_box(clip, b"stts") + 12,
                                                           0x7FFFFFFF))),
        _bad("mp4-moov-chunk-offset-past-eof", _with_u32(clip, (_box(clip, b"stco") + 16,
                                                                0x7FFFFFF0))),
        _bad("mp4-zero-frames", _without_samples(clip), "no decodable video frames"),
        _bad("mkv-zero-frames", _encode("matroska", [])),
        _bad("mp4-no-tracks", _encode("mp4", []), "no video stream"),
        _bad("mp4-audio-only", audio, r"no video stream \(streams found: audio\)"),
        Item("mp4-10h-timestamp-gap", "video", pts_gap_mp4(10), "video/mp4", 413, TOO_LONG,
             "media_too_large", ".mp4"),
        Item("mkv-header-claims-10h", "video", mkv_claiming(36_000), "video/x-matroska", 413,
             TOO_LONG, "media_too_large", ".mkv"),
        Item("mkv-header-claims-3h", "video", mkv_claiming(3 * 3600), "video/x-matroska", 200,
             suffix=".mkv"),
    ]


def vfr_clip(seconds: float = 3.0, fps: float = 10.0) -> bytes:
    data = write_test_video(None, seconds=seconds, fps=fps, size=SIZE, vfr=True)
    assert isinstance(data, bytes)
    return data


def shown_frames(times: list[float], seconds: float = 3.0, fps: float = 10.0) -> list[int]:
    """Index of the :func:`vfr_clip` frame on screen at each time (the last one started)."""
    starts = frame_schedule(seconds, fps, vfr=True)
    return [max(k for k, start in enumerate(starts) if start <= t + 1e-9) for t in times]
