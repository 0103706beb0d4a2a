"""Errors raised by ``vllm_mlx.media``.

Contract: every failure caused by the media a client sent (or by the server's media policy)
raises a :class:`MediaError`. Each error carries

* ``code``: a machine-readable string (``invalid_image``, ``invalid_video``, ``media_too_large``,
  ``media_fetch_failed``, ``media_not_allowed``, ``invalid_data_url``, ``invalid_parameter``,
  ``invalid_media_source``);
* ``param``: the request parameter at fault, ``None`` here; the HTTP layer may set it
  (``err.param = "messages[0].content[1]"``) before rendering;
* ``status_code``: the HTTP status the error maps to (always 4xx);
* a human message (``str(err)``) saying what was wrong and, where relevant, how to fix it;
  it quotes a client's value with :func:`vllm_mlx.bounds.excerpt` and is cut at 1000
  characters whatever it holds.

Nothing here depends on FastAPI or pydantic.
"""

from __future__ import annotations

from ..bounds import safe_text

__all__ = [
    "InvalidDataURL",
    "InvalidImage",
    "InvalidMediaParameter",
    "InvalidVideo",
    "MediaError",
    "MediaFetchError",
    "MediaNotAllowed",
    "MediaTooLarge",
]


MAX_MESSAGE_CHARS = 1000


class MediaError(Exception):
    """Base class: a client-side media problem (HTTP 4xx)."""

    status_code: int = 400
    default_code: str = "invalid_media_source"

    def __init__(self, message: str, *, code: str | None = None, param: str | None = None):
        message = safe_text(message, MAX_MESSAGE_CHARS)  # never a client's megabytes
        super().__init__(message)
        self.message = message
        self.code: str = code or self.default_code
        self.param: str | None = param

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, message={self.message!r})"


class MediaNotAllowed(MediaError):
    """The server's media policy refuses this source (local path outside roots, private URL)."""

    status_code = 403
    default_code = "media_not_allowed"


class MediaTooLarge(MediaError):
    """Bytes, pixels, frames or duration over the policy's limits."""

    status_code = 413
    default_code = "media_too_large"


class MediaFetchError(MediaError):
    """A URL or file could not be fetched (HTTP error, timeout, missing file...)."""

    status_code = 400
    default_code = "media_fetch_failed"


class InvalidDataURL(MediaError):
    """A ``data:`` URL (or bare base64 string) that cannot be parsed."""

    status_code = 400
    default_code = "invalid_data_url"


class InvalidImage(MediaError):
    """Bytes that do not decode to an image."""

    status_code = 400
    default_code = "invalid_image"


class InvalidVideo(MediaError):
    """Bytes that do not decode to a video with at least one frame."""

    status_code = 400
    default_code = "invalid_video"


class InvalidMediaParameter(MediaError, ValueError):
    """A bad sampling/decoding parameter (``fps <= 0``, ``max_frames < 1``...)."""

    status_code = 400
    default_code = "invalid_parameter"
