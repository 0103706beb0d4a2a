"""Decode images into RGB ``PIL.Image`` objects, safely.

Contract: :func:`decode_image` returns a fully loaded (``.load()``), detached RGB image with
EXIF orientation applied. Before any pixel is decoded, the header's width * height is checked
against ``policy.max_image_pixels`` (:class:`MediaTooLarge`); global Pillow state is never
changed (Pillow's own guard, ``2 * Image.MAX_IMAGE_PIXELS``, still applies on top). Unreadable,
truncated or empty data raises :class:`InvalidImage`. Transparency (RGBA, LA, palette or
``transparency`` info) is composited on white; palette, grey, CMYK, 16-bit and float images are
converted to 8-bit RGB. Animated images give their first frame.

:func:`load_image` is the blocking convenience for the Python API: a source string (URL, data
URL, path) or ``Path`` goes through :func:`load_source_sync` under the given policy; a
``PIL.Image`` is converted to RGB.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import InvalidImage, MediaTooLarge
from .fetch import MediaBytes, load_source_sync
from .policy import DEFAULT_POLICY, MediaPolicy

__all__ = ["decode_image", "load_image", "to_rgb"]

_WHITE = (255, 255, 255)
_ALPHA_MODES = frozenset({"RGBA", "LA", "PA", "RGBa", "La"})


def _open(media: MediaBytes | bytes) -> tuple[Image.Image, str]:
    if isinstance(media, bytes | bytearray | memoryview):
        source: io.BytesIO | Path = io.BytesIO(bytes(media))
        origin = f"image ({len(media)} bytes)"
    elif media.path is not None:
        source, origin = media.path, media.origin
    else:
        assert media.data is not None
        source, origin = io.BytesIO(media.data), media.origin
    try:
        return Image.open(source), origin
    except Image.DecompressionBombError as exc:
        raise MediaTooLarge(f"{origin} is too large to decode safely: {exc}") from exc
    except UnidentifiedImageError as exc:
        raise InvalidImage(
            f"{origin} is not a readable image (unknown or corrupt format). "
            "Supported formats include PNG, JPEG, WebP, GIF, BMP and TIFF."
        ) from exc
    except (OSError, ValueError, SyntaxError) as exc:
        raise InvalidImage(
            f"{origin} could not be opened as an image: it is corrupt, truncated or in an "
            f"unsupported format ({exc})."
        ) from exc


def _check_size(img: Image.Image, origin: str, policy: MediaPolicy) -> None:
    width, height = img.size
    if width <= 0 or height <= 0:
        raise InvalidImage(f"{origin} has an empty size ({width}x{height}).")
    if width * height > policy.max_image_pixels:
        raise MediaTooLarge(
            f"{origin} is {width}x{height} = {width * height} pixels, over this server's "
            f"limit of {policy.max_image_pixels} pixels. Downscale it before sending."
        )


def _high_depth_to_l(img: Image.Image) -> Image.Image:
    arr = np.asarray(img).astype(np.float64)
    peak = float(arr.max()) if arr.size else 0.0
    if img.mode == "F" and peak <= 1.0:
        arr = arr * 255.0
    elif img.mode.startswith("I;16") or peak > 255.0:  # 16-bit range (mode "I" when > 255)
        arr = arr / 257.0
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), mode="L")


def _has_alpha(img: Image.Image) -> bool:
    return img.mode in _ALPHA_MODES or "transparency" in img.info


def to_rgb(img: Image.Image) -> Image.Image:
    """``img`` as 8-bit RGB; transparency is composited on white."""
    if img.mode == "RGB":
        return img
    if img.mode.startswith(("I", "F")):
        return _high_depth_to_l(img).convert("RGB")
    if _has_alpha(img):
        rgba = img.convert("RGBA")
        out = Image.new("RGB", rgba.size, _WHITE)
        out.paste(rgba, mask=rgba.getchannel("A"))
        return out
    return img.convert("RGB")


def _upright(img: Image.Image) -> Image.Image:
    """A detached copy of ``img`` with its EXIF orientation applied (bad EXIF is ignored)."""
    try:
        upright = ImageOps.exif_transpose(img)
    except Exception:  # malformed EXIF must not make a readable image fail
        return img.copy()
    return upright if upright is not None else img.copy()


def decode_image(media: MediaBytes | bytes, *, policy: MediaPolicy = DEFAULT_POLICY) -> Image.Image:
    """Decode ``media`` to a loaded RGB image under ``policy``'s pixel limit."""
    img, origin = _open(media)
    with img:
        _check_size(img, origin, policy)
        try:
            img.load()
        except Image.DecompressionBombError as exc:
            raise MediaTooLarge(f"{origin} is too large to decode safely: {exc}") from exc
        except (OSError, ValueError, SyntaxError, EOFError) as exc:
            raise InvalidImage(
                f"{origin} is corrupt or truncated and could not be decoded: {exc}"
            ) from exc
        upright = _upright(img)
    try:
        return to_rgb(upright)
    except (OSError, ValueError) as exc:
        raise InvalidImage(f"{origin} uses an unsupported colour mode {img.mode!r}.") from exc


def load_image(source: str | Path | Image.Image, policy: MediaPolicy) -> Image.Image:
    """Blocking: load ``source`` (URL, data URL, base64, path or image) as an RGB image."""
    if isinstance(source, Image.Image):
        return to_rgb(source)
    media = load_source_sync(source, kind="image", policy=policy)
    return decode_image(media, policy=policy)
