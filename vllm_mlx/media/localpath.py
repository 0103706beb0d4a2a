"""Local paths and ``file://`` URLs, confined to the policy's media roots.

Contract: :func:`resolve_local_path` returns the resolved path of an existing regular file that
lies under one of ``policy.media_roots`` after every symlink is followed
(``Path.resolve(strict=True)``), or raises:

* :class:`MediaNotAllowed` when local paths are disabled, no root is configured, or the path
  (after ``~`` expansion, ``..`` normalisation and symlink resolution) leaves every root. The
  containment check is made before the existence check, so a refused path reveals nothing
  about files outside the roots. The message names the allowed roots and ``--media-root DIR``.
* :class:`MediaFetchError` for a missing file, a directory, or an unreadable path.
* :class:`MediaTooLarge` when the file is bigger than ``max_bytes``.

Relative paths resolve against the first media root.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlsplit

from ..bounds import excerpt
from .errors import MediaFetchError, MediaNotAllowed, MediaTooLarge
from .policy import MediaPolicy

__all__ = ["file_url_to_path", "is_under", "resolve_local_path"]

_HOW_TO_ALLOW = (
    "Start the server with --media-root DIR to allow files under DIR (Python API: "
    "MediaPolicy(media_roots=(DIR,)) or MediaPolicy.trusted()), or send the media as a "
    "data: URL or an http(s) URL."
)


def is_under(path: Path, roots: tuple[Path, ...]) -> bool:
    """Whether resolved ``path`` is one of ``roots`` or inside one."""
    return any(path.is_relative_to(root) for root in roots)


def file_url_to_path(url: str) -> str:
    """The path of a ``file://`` URL (``file:///x``, ``file://localhost/x``, ``file:x``)."""
    parts = urlsplit(url)
    if parts.netloc not in ("", "localhost"):
        raise MediaNotAllowed(
            f"file:// URLs must name a local file; host {excerpt(parts.netloc)} is not supported."
        )
    return unquote(parts.path)


def _refusal(raw: str, policy: MediaPolicy) -> MediaNotAllowed:
    if not policy.allow_local_paths:
        return MediaNotAllowed(
            f"Local file paths are disabled on this server (refused {excerpt(raw)}). "
            "Send the media as a data: URL or an http(s) URL."
        )
    if not policy.media_roots:
        return MediaNotAllowed(
            f"Local file path {excerpt(raw)} refused: local files are allowed only under "
            f"configured media roots, and none is configured. {_HOW_TO_ALLOW}"
        )
    roots = ", ".join(str(r) for r in policy.media_roots)
    return MediaNotAllowed(
        f"Local file path {excerpt(raw)} is outside the allowed media roots ({roots}); paths are "
        f"checked after resolving '..' and symlinks. {_HOW_TO_ALLOW}"
    )


def _resolve(raw: str, policy: MediaPolicy, *, strict: bool) -> Path:
    path = Path(raw).expanduser()
    relative = not path.is_absolute()
    if relative:
        path = policy.media_roots[0] / path
    try:
        return path.resolve(strict=strict)
    except FileNotFoundError as exc:
        roots = ", ".join(str(r) for r in policy.media_roots)
        where = (f" (a relative path is read under the first media root "
                 f"{policy.media_roots[0]}, not the client's folder: give a path relative to "
                 f"it, or an absolute path under a media root ({roots}); the server's "
                 "--media-root DIR adds roots)" if relative else "")
        raise MediaFetchError(f"Local file not found: {excerpt(raw)}{where}.") from exc
    except (OSError, RuntimeError, ValueError) as exc:  # loops, permissions, NUL bytes
        raise MediaFetchError(f"Cannot open local path {excerpt(raw)}: {exc}.") from exc


def resolve_local_path(raw: str, policy: MediaPolicy, *, max_bytes: int) -> Path:
    """Check ``raw`` against ``policy`` and return the resolved file path."""
    if not policy.allow_local_paths or not policy.media_roots:
        raise _refusal(raw, policy)
    if not is_under(_resolve(raw, policy, strict=False), policy.media_roots):
        raise _refusal(raw, policy)
    resolved = _resolve(raw, policy, strict=True)
    if not is_under(resolved, policy.media_roots):  # changed between the two resolutions
        raise _refusal(raw, policy)
    try:
        stat = resolved.stat()
    except OSError as exc:
        raise MediaFetchError(f"Cannot read local file {excerpt(raw)}: {exc}.") from exc
    if not resolved.is_file():
        raise MediaFetchError(f"Local path {excerpt(raw)} is not a regular file.")
    if stat.st_size > max_bytes:
        raise MediaTooLarge(
            f"Local file {excerpt(raw)} is {stat.st_size} bytes, over this server's limit of "
            f"{max_bytes} bytes."
        )
    return resolved
