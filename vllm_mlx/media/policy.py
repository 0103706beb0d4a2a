"""What media a server (or the Python API) is willing to load, and how much of it.

Contract: :class:`MediaPolicy` is an immutable value; every loader and decoder in this package
takes one and enforces it. The default policy is the safe server default: no local files (no
media roots configured), no private-network URLs, bounded sizes. The Python API, run by the
user on their own machine, uses :meth:`MediaPolicy.trusted`.

Media roots are stored expanded (``~``) and resolved (symlinks followed), so containment
checks compare resolved paths with resolved roots.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["DEFAULT_POLICY", "MIB", "MediaPolicy"]

MIB = 1024 * 1024


def _normalise_root(root: str | Path) -> Path:
    return Path(root).expanduser().resolve()


@dataclass(frozen=True)
class MediaPolicy:
    """Limits and permissions for loading images and videos.

    media_roots: directories local paths and ``file://`` URLs may point into; relative paths
        resolve against the first one. With no roots, local paths are refused.
    allow_local_paths: master switch for local paths (still only under ``media_roots``).
    allow_private_urls: allow http(s) URLs resolving to loopback/private/link-local/...
        addresses (off by default: server-side request forgery guard).
    max_video_frame_pixels: width * height limit for one video frame (8K UHD fits).
    max_video_frames_decoded: frames one sampling pass may decode before giving up.
    """

    media_roots: tuple[Path, ...] = ()
    allow_local_paths: bool = True
    allow_private_urls: bool = False
    max_image_bytes: int = 20 * MIB
    max_video_bytes: int = 512 * MIB
    fetch_timeout_s: float = 15.0
    max_redirects: int = 5
    max_image_pixels: int = 64_000_000
    max_video_frame_pixels: int = 36_000_000
    max_video_frames_decoded: int = 1_000_000
    max_video_duration_s: float = 4 * 3600.0

    def __post_init__(self) -> None:
        roots = tuple(_normalise_root(r) for r in self.media_roots)
        object.__setattr__(self, "media_roots", roots)
        limits = {
            "max_image_bytes": self.max_image_bytes,
            "max_video_bytes": self.max_video_bytes,
            "fetch_timeout_s": self.fetch_timeout_s,
            "max_image_pixels": self.max_image_pixels,
            "max_video_frame_pixels": self.max_video_frame_pixels,
            "max_video_frames_decoded": self.max_video_frames_decoded,
            "max_video_duration_s": self.max_video_duration_s,
        }
        for name, value in limits.items():
            if not value > 0:
                raise ValueError(f"MediaPolicy.{name} must be > 0, got {value!r}")
        if self.max_redirects < 0:
            raise ValueError(f"MediaPolicy.max_redirects must be >= 0, got {self.max_redirects}")

    @classmethod
    def trusted(cls, cwd: str | Path | None = None) -> MediaPolicy:
        """Policy for a local, single-user Python API: any local file, private URLs allowed.

        Relative paths resolve against ``cwd`` (default: the current directory).
        """
        base = _normalise_root(cwd if cwd is not None else Path.cwd())
        return cls(media_roots=(base, Path(base.anchor)), allow_private_urls=True)

    def max_bytes(self, kind: str) -> int:
        """The byte cap for ``kind`` (``"image"`` or ``"video"``)."""
        return self.max_video_bytes if kind == "video" else self.max_image_bytes


DEFAULT_POLICY = MediaPolicy()
"""The server default: no local files, no private URLs, default limits."""
