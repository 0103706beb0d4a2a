"""The live-video wire protocol: what a client sends, checked before it is accepted.

Contract (seed ``000_7df58bfd37b22342``, ``shared/specs/frame-stream.md``): a client sends

* text ``{"timestamp": <unix float>, "frame": "<base64 JPEG>"}`` (``timestamp`` may be
  left out: the server's receive time stands in; ``frame`` may be a ``data:`` URL);
* or a bare base64 JPEG string (the reference server accepts it), or a binary message
  holding the raw JPEG bytes;
* or ``{"config": {...}}`` to change its settings (see :mod:`vllm_mlx.stream.config`).

:func:`parse_message` turns one message into a :class:`Frame` or a :class:`ConfigUpdate`
and raises :class:`~vllm_mlx.errors.APIError` (400, ``code`` one of ``invalid_json``,
``invalid_message``, ``invalid_timestamp``, ``invalid_base64``, ``unsupported_frame_format``,
``invalid_frame``, ``frame_too_large``) for anything else. A timestamp must be finite and
within 0 to :data:`MAX_TIMESTAMP_S`; :func:`check_order` also refuses one more than
:data:`MAX_TIMESTAMP_JUMP_S` from the connection's newest frame (both ``invalid_timestamp``).
A frame is accepted only if it is
a JPEG whose header and entropy-coded data decode, within the
pixel limit, so a corrupt frame is reported when it arrives, not when it is analysed.
Frames up to ``decode_pixels`` (720p) are fully decoded with
:func:`vllm_mlx.media.decode_image` right away, off the reply's critical path; larger
ones are checked at 1/8 scale and decoded when analysed.
Blocking (CPU work, a millisecond or two a frame): call it off the event loop.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import math
import time
from dataclasses import dataclass
from typing import Any

from PIL import Image, UnidentifiedImageError

from ..errors import APIError
from ..media import MediaError, MediaPolicy, decode_image
from .config import brief

DECODE_PIXELS = 1280 * 720  # frames up to this size are decoded as they arrive
MAX_TIMESTAMP_S = 1e10  # year 2286 in unix seconds; also fits clocks that start at 0
MAX_TIMESTAMP_JUMP_S = 1e7  # about 116 days between a connection's frames
JPEG_MAGIC = b"\xff\xd8\xff"
_SIGNATURES = {b"\x89PNG": "PNG", b"GIF8": "GIF", b"RIFF": "WebP", b"BM": "BMP",
               b"II*\x00": "TIFF", b"MM\x00*": "TIFF"}


@dataclass(frozen=True)
class Frame:
    """One accepted JPEG frame."""

    jpeg: bytes
    timestamp: float  # the client's capture time (unix seconds), or the receive time
    received: float  # server ``time.monotonic()`` when it arrived
    width: int
    height: int
    image: Image.Image | None = None  # decoded on arrival (frames up to DECODE_PIXELS),
    # possibly already at the model processor's size (see vllm_mlx.stream.presize)

    @property
    def nbytes(self) -> int:
        """Memory this frame holds, or will hold once an analysis decodes it: its JPEG plus
        its RGB pixels (a few KB of JPEG can declare 16 MP, 48 MB decoded)."""
        if self.image is not None:
            return len(self.jpeg) + self.image.width * self.image.height * 3
        return len(self.jpeg) + self.width * self.height * 3


@dataclass(frozen=True)
class ConfigUpdate:
    values: dict[str, Any]


def _error(message: str, code: str, param: str | None = "frame") -> APIError:
    return APIError(400, message, param=param, code=code)


def _b64decode(text: str) -> bytes:
    if text.startswith("data:"):
        header, _, text = text.partition(",")
        if ";base64" not in header:
            raise _error("a data: URL frame must be base64-encoded", "invalid_base64")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        pass
    try:  # line-wrapped (MIME) base64
        return base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        raise _error("frame is not valid base64 (send base64-encoded JPEG bytes)",
                     "invalid_base64") from None


def _format_name(data: bytes) -> str:
    for signature, name in _SIGNATURES.items():
        if data.startswith(signature):
            return name
    return "not an image"


def check_jpeg(data: bytes, max_pixels: int, decode_pixels: int = 0
               ) -> tuple[int, int, Image.Image | None]:
    """(width, height, image) of a decodable JPEG within ``max_pixels``. Frames of at most
    ``decode_pixels`` are decoded now (the image is returned); larger ones are checked at
    1/8 scale and decoded when analysed (image None)."""
    if not data.startswith(JPEG_MAGIC):
        raise _error(f"frame must be a JPEG image (got {_format_name(data)}, "
                     f"{len(data)} bytes)", "unsupported_frame_format")
    try:
        with Image.open(io.BytesIO(data)) as img:
            width, height = img.size
            if width * height > max_pixels:
                raise _error(f"frame is {width}x{height} pixels, over this server's limit "
                             f"of {max_pixels}; send smaller frames", "frame_too_large")
            if width * height > decode_pixels:
                img.draft("RGB", (max(1, width // 8), max(1, height // 8)))
                img.load()
                return width, height, None
    except APIError:
        raise
    except Image.DecompressionBombError:  # Pillow's own limit, far above ours
        raise _error(f"frame is over this server's limit of {max_pixels} pixels; send "
                     "smaller frames", "frame_too_large") from None
    except UnidentifiedImageError:  # its text shows the buffer's address, of no use to anyone
        raise _error("frame is a corrupt JPEG: Pillow cannot identify it",
                     "invalid_frame") from None
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        raise _error(f"frame is a corrupt or truncated JPEG: {exc}", "invalid_frame") from None
    try:
        image = decode_image(data, policy=MediaPolicy(max_image_pixels=max_pixels))
    except MediaError as exc:
        raise _error(f"frame is a corrupt or truncated JPEG: {exc}", "invalid_frame") from None
    return image.width, image.height, image


def _timestamp(value: Any, now: float) -> float:
    if value is None:
        return now
    try:
        seconds = float(value) if isinstance(value, int | float) else math.nan
    except OverflowError:  # an integer past float range
        seconds = math.nan
    if isinstance(value, bool) or not math.isfinite(seconds):
        raise _error(f"timestamp must be a number (unix seconds), not {brief(value)}",
                     "invalid_timestamp", param="timestamp")
    if not 0 <= seconds <= MAX_TIMESTAMP_S:
        raise _error(f"timestamp {brief(value)} is out of range: it must be between 0 and "
                     f"{MAX_TIMESTAMP_S:.0e} (unix seconds)", "invalid_timestamp",
                     param="timestamp")
    return seconds


def check_order(timestamp: float, newest: float | None) -> None:
    """Refuse a frame more than :data:`MAX_TIMESTAMP_JUMP_S` from the newest frame its
    connection sent before (``newest``; None for the first): one far-off timestamp would
    leave every other frame stale (``max_span``) or stretch a video clip over years."""
    if newest is not None and abs(timestamp - newest) > MAX_TIMESTAMP_JUMP_S:
        raise _error(f"timestamp {timestamp:g} is {abs(timestamp - newest):.3g} s from the "
                     f"newest frame's ({newest:g}), more than this server's limit of "
                     f"{MAX_TIMESTAMP_JUMP_S:.0e} s; keep one clock per connection",
                     "invalid_timestamp", param="timestamp")


def _parse_json(text: str) -> tuple[str, float | None] | ConfigUpdate:
    try:
        obj = json.loads(text)
    except (ValueError, RecursionError):  # ValueError: also a number past int's digit limit
        raise _error("message is not valid JSON", "invalid_json", param=None) from None
    if not isinstance(obj, dict):
        raise _error("message must be a JSON object", "invalid_message", param=None)
    if "config" in obj:
        if not isinstance(obj["config"], dict):
            raise _error("'config' must be an object of settings", "invalid_message",
                         param="config")
        return ConfigUpdate(obj["config"])
    frame = obj.get("frame")
    if not isinstance(frame, str) or not frame:
        raise _error("message needs a 'frame' field with a base64 JPEG string",
                     "invalid_message")
    return frame, obj.get("timestamp")


def parse_message(data: str | bytes, max_pixels: int, decode_pixels: int = DECODE_PIXELS
                  ) -> Frame | ConfigUpdate:
    """One client message as a checked :class:`Frame` or a :class:`ConfigUpdate`."""
    received, now = time.monotonic(), time.time()
    stamp: Any = None
    if isinstance(data, bytes | bytearray):
        if not data.startswith(JPEG_MAGIC):
            try:
                return parse_message(bytes(data).decode("utf-8"), max_pixels, decode_pixels)
            except UnicodeDecodeError:
                raise _error("a binary message must hold raw JPEG bytes",
                             "unsupported_frame_format") from None
        jpeg = bytes(data)
    else:
        text = data.strip()
        if text.startswith(("{", "[")):
            parsed = _parse_json(text)
            if isinstance(parsed, ConfigUpdate):
                return parsed
            text, stamp = parsed
        jpeg = _b64decode(text)
    timestamp = _timestamp(stamp, now)
    width, height, image = check_jpeg(jpeg, max_pixels, decode_pixels)
    return Frame(jpeg=jpeg, timestamp=timestamp, received=received, width=width,
                 height=height, image=image)
