"""``data:`` URLs and bare base64 strings.

Contract:

* :func:`parse_data_url` accepts ``data:[<mime>][;param=v...][;base64],<payload>`` (RFC 2397).
  With ``;base64`` the payload is decoded strictly (``base64.b64decode(validate=True)``) after
  removing whitespace; missing ``=`` padding, the URL-safe alphabet (``-_``) and a
  percent-encoded payload are tolerated. Without ``;base64`` the payload is percent-decoded.
  The decoded size is checked against ``max_bytes`` *before* decoding (from the payload
  length) and after. Errors: :class:`InvalidDataURL`, :class:`MediaTooLarge`.
* :func:`decode_bare_base64` is the fallback for clients that send base64 without a ``data:``
  prefix: it returns bytes only when the string is long, is valid base64, and decodes to a
  recognised image/video signature; otherwise ``None`` (the caller then treats it as a path).
"""

from __future__ import annotations

import base64
import re
from urllib.parse import unquote_to_bytes

from .errors import InvalidDataURL, MediaTooLarge
from .sniff import sniff_mime

__all__ = ["BARE_BASE64_MIN_LEN", "decode_bare_base64", "parse_data_url"]

BARE_BASE64_MIN_LEN = 64
_WHITESPACE = re.compile(r"\s+")
_BASE64_ESCAPES = (("%2B", "+"), ("%2F", "/"), ("%3D", "="))
_CHUNK = 1 << 16
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
_URLSAFE = str.maketrans("-_", "+/")
_HINT = "Send it as data:<mime>;base64,<base64 bytes>, e.g. data:image/png;base64,iVBORw0..."


def _too_large(size: int, max_bytes: int) -> MediaTooLarge:
    return MediaTooLarge(
        f"Inline media is {size} bytes, over this server's limit of {max_bytes} bytes. "
        "Send a smaller file or ask the operator to raise the limit."
    )


def _b64decode(payload: str, max_bytes: int) -> bytes:
    if len(payload) > 4 * max_bytes + (1 << 20):
        raise _too_large(len(payload) * 3 // 4, max_bytes)
    text = _WHITESPACE.sub("", payload)
    if "%" in text:  # URL-encoded base64: only these escapes can be valid (no unquote():
        # it splits at every '%', gigabytes of pieces for tens of MB of '%')
        for escape, char in _BASE64_ESCAPES:
            text = text.replace(escape, char).replace(escape.lower(), char)
    if "-" in text or "_" in text:
        text = text.translate(_URLSAFE)
    if len(text) % 4 in (2, 3):
        text += "=" * (-len(text) % 4)
    estimate = len(text) // 4 * 3 - text[-2:].count("=")
    if estimate > max_bytes:
        raise _too_large(estimate, max_bytes)
    try:
        return base64.b64decode(text, validate=True)
    except ValueError as exc:  # binascii.Error and non-ASCII input
        raise InvalidDataURL(f"Invalid base64 payload in data URL ({exc}). {_HINT}") from exc


def _percent_decoded(payload: str, max_bytes: int) -> bytes:
    """``unquote_to_bytes`` a chunk at a time, stopping past ``max_bytes``: its pieces (one
    per '%') stay a chunk's worth, however many a hostile payload holds."""
    if len(payload) > 3 * max_bytes:  # even all escapes ("%41") would be too much
        raise _too_large(len(payload) // 3, max_bytes)
    if _BAD_ESCAPE.search(payload):
        raise InvalidDataURL(f"Malformed data URL: a '%' not followed by two hex digits. {_HINT}")
    out, start = bytearray(), 0
    while start < len(payload):
        end = min(start + _CHUNK, len(payload))
        cut = payload.rfind("%", max(start, end - 2), end)
        if cut != -1:  # keep an escape whole
            end = min(cut + 3, len(payload))
        out += unquote_to_bytes(payload[start:end])
        if len(out) > max_bytes:
            raise _too_large(len(out), max_bytes)
        start = end
    return bytes(out)


def parse_data_url(url: str, *, max_bytes: int) -> tuple[bytes, str | None]:
    """Decode a ``data:`` URL into ``(bytes, declared mime or None)``."""
    if url[:5].lower() != "data:":
        raise InvalidDataURL(f"Not a data URL (it must start with 'data:'). {_HINT}")
    comma = url.find(",")
    if comma < 0:
        raise InvalidDataURL(f"Malformed data URL: no ',' separates header and payload. {_HINT}")
    params = [p.strip() for p in url[5:comma].split(";")]
    mime = params[0].lower() or None
    if mime is not None and "/" not in mime:
        raise InvalidDataURL(f"Malformed data URL: {mime[:40]!r} is not a MIME type. {_HINT}")
    payload = url[comma + 1 :]
    if any(p.lower() == "base64" for p in params[1:]):
        data = _b64decode(payload, max_bytes)
    else:
        data = _percent_decoded(payload, max_bytes)
    if not data:
        raise InvalidDataURL(f"The data URL's payload is empty. {_HINT}")
    return data, mime


def decode_bare_base64(text: str, *, max_bytes: int) -> bytes | None:
    """Bytes of a bare base64 media string, or ``None`` if ``text`` does not look like one."""
    if len(text) < BARE_BASE64_MIN_LEN:
        return None
    head = _WHITESPACE.sub("", text[:64])
    if len(head) < 16:
        return None
    try:
        prefix = base64.b64decode(head[:16], validate=True)
    except ValueError:
        return None
    if sniff_mime(prefix) is None:
        return None
    try:
        return _b64decode(text, max_bytes)
    except InvalidDataURL:
        return None
