"""Synthetic media for tests and benchmarks (importable; nothing here runs at import).

Contract:

* :func:`write_test_video` writes an mp4 whose frame ``k`` shows ``k`` as a 12-bit barcode in
  its top band (black/white cells, robust to H.264/MPEG-4 compression);
  :func:`read_frame_index` recovers ``k`` from a decoded RGB frame. Frame times are exactly
  :func:`frame_schedule` (constant rate, or a repeating variable-rate pattern with ``vfr``).
  The keyframe interval is ``gop`` (default 250, scene-cut detection off). ``realistic``
  fills the rest of the frame with a panning noise texture so decoding cost is typical.
  With ``path=None`` the file's bytes are returned, else the path.
* :func:`write_test_audio` writes an audio-only mp4 (AAC or MP3 in mp4).
* :func:`make_test_image` encodes small images of many kinds (modes, formats, EXIF);
  :func:`png_header` forges a PNG that claims any size (decompression-bomb tests).
"""

from __future__ import annotations

import io
import struct
import zlib
from fractions import Fraction
from pathlib import Path
from types import MappingProxyType
from typing import Literal

import av
import numpy as np
from PIL import Image

__all__ = [
    "CODE_BITS",
    "frame_schedule",
    "make_test_image",
    "png_header",
    "read_frame_index",
    "render_frame",
    "write_test_audio",
    "write_test_video",
]

CODE_BITS = 12
_VFR_TICKS = (1, 3, 2, 4, 1, 1)  # frame durations in half-frame units: mean of one frame
_CODECS = MappingProxyType({"h264": "libx264", "mpeg4": "mpeg4"})
_QUADRANTS = ((255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255))

ImageKind = Literal[
    "rgb",
    "jpeg",
    "rgba",
    "palette",
    "palette_transparent",
    "gray",
    "gray16",
    "cmyk",
    "exif_rotated",
    "gif",
    "webp",
]


def _time_base(fps: float, vfr: bool) -> Fraction:
    rate = Fraction(fps).limit_denominator(1001)
    return 1 / (rate * 2) if vfr else 1 / rate


def _schedule_pts(seconds: float, fps: float, vfr: bool) -> list[int]:
    limit = Fraction(seconds).limit_denominator(10**6) / _time_base(fps, vfr)
    pts: list[int] = []
    tick = 0
    while tick < limit or not pts:
        pts.append(tick)
        tick += _VFR_TICKS[(len(pts) - 1) % len(_VFR_TICKS)] if vfr else 1
    return pts


def frame_schedule(seconds: float, fps: float, *, vfr: bool = False) -> list[float]:
    """Presentation times (s) of the frames :func:`write_test_video` writes."""
    base = _time_base(fps, vfr)
    return [float(p * base) for p in _schedule_pts(seconds, fps, vfr)]


def _band_height(height: int) -> int:
    return max(4, height * 3 // 8)


def _texture(width: int, height: int, frames: int) -> np.ndarray:
    rng = np.random.default_rng(1234)
    coarse = rng.integers(0, 256, (height // 8 + 2, (width + frames) // 8 + 2, 3), np.uint8)
    fine = np.repeat(np.repeat(coarse, 8, axis=0), 8, axis=1)
    return np.clip(fine.astype(np.int16) + rng.integers(-12, 12, fine.shape), 0, 255).astype(
        np.uint8
    )


def render_frame(
    index: int, width: int, height: int, texture: np.ndarray | None = None
) -> np.ndarray:
    """The RGB frame ``index`` of a test clip (barcode band on top)."""
    frame = np.full((height, width, 3), 128, np.uint8)
    if texture is not None:
        frame[:] = texture[:height, index : index + width]
    band = _band_height(height)
    cell = width // CODE_BITS
    for bit in range(CODE_BITS):
        value = 235 if (index >> bit) & 1 else 16
        frame[:band, bit * cell : (bit + 1) * cell] = value
    return frame


def read_frame_index(frame: np.ndarray) -> int:
    """Recover ``k`` from frame ``k`` of a test clip (any scale; RGB ``(H, W, 3)``)."""
    height, width = frame.shape[:2]
    band = _band_height(height)
    cell = width / CODE_BITS
    rows = frame[band // 4 : max(band // 4 + 1, band * 3 // 4)]
    index = 0
    for bit in range(CODE_BITS):
        lo, hi = int(bit * cell + cell / 4), int(bit * cell + cell * 3 / 4)
        if rows[:, lo : max(hi, lo + 1)].mean() > 128:
            index |= 1 << bit
    return index


def _finish(buf: io.BytesIO, path: str | Path | None) -> bytes | Path:
    if path is None:
        return buf.getvalue()
    out = Path(path)
    out.write_bytes(buf.getvalue())
    return out


def write_test_video(
    path: str | Path | None,
    *,
    seconds: float,
    fps: float,
    size: tuple[int, int] = (96, 64),
    codec: Literal["h264", "mpeg4"] = "h264",
    vfr: bool = False,
    gop: int = 250,
    realistic: bool = False,
    rotation: int | None = None,
) -> bytes | Path:
    """Write a barcode-numbered clip (see module docstring); bytes when ``path`` is None."""
    width, height = size
    if width < 2 * CODE_BITS or height < 8 or width % 2 or height % 2:
        raise ValueError("size must be even, at least (24, 8)")
    pts = _schedule_pts(seconds, fps, vfr)
    texture = _texture(width, height, len(pts)) if realistic else None
    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as container:
        stream = container.add_stream(_CODECS[codec], rate=Fraction(fps).limit_denominator(1001))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.time_base = _time_base(fps, vfr)
        stream.codec_context.gop_size = gop
        stream.codec_context.options = {"sc_threshold": "0"}
        if rotation is not None:
            stream.set_display_rotation(rotation)
        for index, tick in enumerate(pts):
            frame = av.VideoFrame.from_ndarray(
                render_frame(index, width, height, texture), format="rgb24"
            )
            frame.pts, frame.time_base = tick, stream.codec_context.time_base
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return _finish(buf, path)


def _pcm(samples: np.ndarray, fmt: str) -> np.ndarray:
    """Float samples in [-1, 1] as the sample format ``fmt`` wants (s16, s32, flt, dbl)."""
    if fmt.startswith("s16"):
        return (samples * 32767).astype(np.int16)
    if fmt.startswith("s32"):
        return (samples * 2147483647).astype(np.int32)
    return samples.astype(np.float64 if fmt.startswith("dbl") else np.float32)


def write_test_audio(
    path: str | Path | None, *, seconds: float = 1.0, codec: Literal["aac", "mp3"] = "aac"
) -> bytes | Path:
    """An audio-only mp4 (silence plus a tone)."""
    rate, chunk = 44100, 1152 if codec == "mp3" else 1024
    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as container:
        stream = container.add_stream(codec, rate=rate, layout="mono")
        for i in range(max(1, int(seconds * rate / chunk))):
            t = (np.arange(chunk) + i * chunk) / rate
            samples = (0.2 * np.sin(2 * np.pi * 440 * t))[None, :]
            fmt = stream.codec_context.format.name
            frame = av.AudioFrame.from_ndarray(_pcm(samples, fmt), format=fmt, layout="mono")
            frame.sample_rate, frame.pts = rate, i * chunk
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return _finish(buf, path)


def _quadrants(width: int, height: int) -> Image.Image:
    arr = np.zeros((height, width, 3), np.uint8)
    hw, hh = max(1, width // 2), max(1, height // 2)
    arr[:hh, :hw], arr[:hh, hw:], arr[hh:, :hw], arr[hh:, hw:] = _QUADRANTS
    return Image.fromarray(arr, "RGB")


def _encode(img: Image.Image, fmt: str, **params: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **params)
    return buf.getvalue()


def make_test_image(width: int, height: int, kind: ImageKind = "rgb") -> bytes:
    """Encoded test image: quadrants red/green (top), blue/white (bottom).

    ``rgba``: left half fully transparent, right half opaque red. ``exif_rotated``: JPEG
    stored ``width x height`` with EXIF Orientation 6 (displays rotated 90 degrees clockwise).
    ``gray16``: a 16-bit greyscale PNG ramp up to 65535.
    """
    img = _quadrants(width, height)
    if kind == "rgba":
        rgba = Image.new("RGBA", (width, height), (255, 0, 0, 255))
        rgba.paste((0, 0, 0, 0), (0, 0, max(1, width // 2), height))
        return _encode(rgba, "PNG")
    if kind in ("palette", "palette_transparent"):
        pal = img.convert("P", palette=Image.Palette.ADAPTIVE, colors=4)
        first = pal.getpixel((0, 0))
        params = {"transparency": first if isinstance(first, int) else 0}
        params = params if kind == "palette_transparent" else {}
        return _encode(pal, "PNG", **params)
    if kind == "gray16":
        ramp = np.linspace(0, 65535, width * height).reshape(height, width).astype(np.uint16)
        return _encode(Image.fromarray(ramp), "PNG")
    if kind == "exif_rotated":
        exif = Image.Exif()
        exif[0x0112] = 6
        return _encode(img, "JPEG", quality=95, exif=exif.tobytes())
    simple = {
        "rgb": ("RGB", "PNG"),
        "jpeg": ("RGB", "JPEG"),
        "gray": ("L", "PNG"),
        "cmyk": ("CMYK", "JPEG"),
        "gif": ("P", "GIF"),
        "webp": ("RGB", "WEBP"),
    }
    mode, fmt = simple[kind]
    return _encode(img.convert(mode), fmt)


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_header(width: int, height: int) -> bytes:
    """A tiny PNG claiming ``width x height`` (its pixel data is missing)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", zlib.compress(b"\x00" * 16))
        + _png_chunk(b"IEND", b"")
    )
