"""Recognise common image and video formats from their first bytes.

Contract: :func:`sniff_mime` looks only at a short prefix, never raises, and returns a MIME
type such as ``"image/png"`` or ``"video/mp4"``, or ``None`` when the bytes match no signature
it knows. It is a hint (for ``MediaBytes.mime`` and for recognising bare base64 media), not a
validation: decoders have the last word.
"""

from __future__ import annotations

from types import MappingProxyType

__all__ = ["is_pdf", "media_kind_of", "sniff_mime"]

_PREFIXES: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"BM", "image/bmp"),
    (b"II*\x00", "image/tiff"),
    (b"MM\x00*", "image/tiff"),
    (b"\x00\x00\x01\x00", "image/x-icon"),
    (b"\x1a\x45\xdf\xa3", "video/webm"),
    (b"\x00\x00\x01\xba", "video/mpeg"),
    (b"OggS", "video/ogg"),
    (b"FLV", "video/x-flv"),
)

_RIFF = MappingProxyType({b"WEBP": "image/webp", b"AVI ": "video/x-msvideo"})
_FTYP_IMAGE_BRANDS = (b"avif", b"avis", b"heic", b"heix", b"mif1", b"msf1")


def sniff_mime(data: bytes) -> str | None:
    """The MIME type that ``data``'s leading bytes announce, or ``None``."""
    head = bytes(data[:32])
    for prefix, mime in _PREFIXES:
        if head.startswith(prefix):
            return mime
    if head[:4] == b"RIFF" and head[8:12] in _RIFF:
        return _RIFF[head[8:12]]
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in _FTYP_IMAGE_BRANDS:
            return "image/avif" if brand.startswith(b"avi") else "image/heic"
        return "video/quicktime" if brand == b"qt  " else "video/mp4"
    if len(head) >= 1 and head[0] == 0x47 and len(data) > 188 and data[188] == 0x47:
        return "video/mp2t"
    return None


def is_pdf(head: bytes) -> bool:
    """Whether these first bytes open a PDF (kept apart from :func:`sniff_mime`, whose
    answers are media types)."""
    return head.lstrip()[:5] == b"%PDF-"


def media_kind_of(mime: str | None) -> str | None:
    """``"image"``/``"video"``/... from a MIME type's major part; ``None`` when unknown."""
    if not mime or "/" not in mime:
        return None
    return mime.split("/", 1)[0].strip().lower() or None
