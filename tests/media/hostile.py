"""A hostile image and request corpus, generated in memory (nothing is downloaded).

Contract: every builder returns :class:`Item` values (bytes plus what a server must answer)
or reference strings, built with Pillow and hand-forged headers:

* :func:`image_items`: truncated, corrupt and header-only JPEG/PNG/WebP, decompression bombs
  (a tiny file whose header claims huge dimensions, in four formats, and a real 20000x20000
  1-bit PNG of 49 KB), and the valid extremes (1x1).
* :func:`mislabelled_items`: bytes of one kind declared as another.
* :func:`bad_data_urls`: ``data:`` URLs with broken base64 or headers, and one over the size cap.
* :func:`plant_path_cases`: ``..`` and ``file://`` traversal attempts, symlinks out of the
  media root, a FIFO, a directory and sparse over-cap files, created under ``root``/``outside``.
* :func:`redirect_targets`: redirect ``Location`` values aiming at private addresses.

Videos are in :mod:`tests.media.hostile_video`. Expected statuses are the server's documented
answers: 400 unreadable input, 403 refused by policy, 413 over a limit, 200 valid input.
"""

from __future__ import annotations

import base64
import io
import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image

from vllm_mlx.media.testing import make_test_image, png_header

Transport = Literal["data", "path", "url"]
ALL_TRANSPORTS: tuple[Transport, ...] = ("data", "path", "url")
TOO_LARGE = r"limit|too large"


@dataclass(frozen=True)
class Item:
    """Media bytes sent as ``kind``, declared as ``mime``, and the answer they must get.

    ``words`` is a regex the error message must match (ignored for status 200);
    ``transports`` says how the item is sent (data URL, file under the media root, http URL).
    """

    name: str
    kind: Literal["image", "video"]
    data: bytes
    mime: str
    status: int
    words: str = ""
    code: str | None = None
    suffix: str = ".bin"
    transports: tuple[Transport, ...] = ALL_TRANSPORTS


@dataclass(frozen=True)
class Case:
    """A raw media reference (URL or path string) and the answer it must get."""

    name: str
    kind: Literal["image", "video"]
    reference: str
    status: int
    words: str = ""
    code: str | None = None


def noise_image(width: int, height: int, fmt: str, seed: int = 0, **params: object) -> bytes:
    rng = np.random.default_rng(seed)
    img = Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))
    buf = io.BytesIO()
    img.save(buf, fmt, **params)
    return buf.getvalue()


def _patched(data: bytes, marker: bytes, offset: int, value: bytes) -> bytes:
    out = bytearray(data)
    at = out.find(marker)
    assert at >= 0, marker
    at += offset
    out[at : at + len(value)] = value
    return bytes(out)


def jpeg_claiming(width: int, height: int) -> bytes:
    """A 16x16 JPEG whose SOF0 header claims ``width x height``."""
    return _patched(noise_image(16, 16, "JPEG"), b"\xff\xc0", 5, struct.pack(">HH", height, width))


def gif_claiming(width: int, height: int) -> bytes:
    """An 8x8 GIF whose logical screen claims ``width x height``."""
    data = bytearray(make_test_image(8, 8, "gif"))
    assert data[:3] == b"GIF"
    data[6:10] = struct.pack("<HH", width, height)
    return bytes(data)


def webp_claiming(width: int, height: int) -> bytes:
    """A lossless 16x16 WebP whose VP8L header claims ``width x height`` (at most 16384)."""
    data = bytearray(noise_image(16, 16, "WEBP", lossless=True))
    assert data[12:16] == b"VP8L"
    rest = int.from_bytes(data[21:25], "little") & ~((1 << 28) - 1)
    data[21:25] = ((width - 1) | ((height - 1) << 14) | rest).to_bytes(4, "little")
    return bytes(data)


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def bilevel_png(width: int, height: int) -> bytes:
    """A real, complete, all-black 1-bit PNG (20000x20000 is 49 KB, 1.2 GB as RGB)."""
    row = b"\x00" * (1 + (width + 7) // 8)
    packer = zlib.compressobj(9)
    body = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", body)
            + _png_chunk(b"IEND", b""))


def _broken(name: str, data: bytes, suffix: str, words: str = "corrupt|truncated|readable"
            ) -> Item:
    return Item(name, "image", data, f"image/{suffix[1:]}", 400, words, "invalid_image", suffix)


def image_items() -> list[Item]:
    jpeg, png = noise_image(64, 48, "JPEG"), noise_image(64, 48, "PNG")
    webp = noise_image(64, 48, "WEBP")
    bombs = [("png-claims-100000x100000", png_header(100_000, 100_000), ".png"),
             ("jpeg-claims-65000x65000", jpeg_claiming(65_000, 65_000), ".jpeg"),
             ("jpeg-claims-9000x9000", jpeg_claiming(9000, 9000), ".jpeg"),
             ("gif-claims-65535x65535", gif_claiming(65_535, 65_535), ".gif"),
             ("webp-claims-16384x16384", webp_claiming(16_384, 16_384), ".webp"),
             ("png-real-20000x20000", bilevel_png(20_000, 20_000), ".png")]
    return [
        _broken("jpeg-truncated", jpeg[: len(jpeg) // 2], ".jpeg"),
        _broken("jpeg-corrupt-huffman", _patched(jpeg, b"\xff\xc4", 5, b"\xff" * 35), ".jpeg"),
        _broken("jpeg-corrupt-sof", _patched(jpeg, b"\xff\xc0", 4, b"\x63"), ".jpeg"),
        _broken("png-truncated", png[: len(png) * 9 // 10], ".png"),
        _broken("png-corrupt-idat", _patched(png, b"IDAT", 8, b"\xff" * 12), ".png"),
        _broken("png-bad-ihdr-crc", _patched(png, b"IHDR", 17, b"\x00\x00\x00\x00"), ".png"),
        _broken("png-header-only", png[:20], ".png"),
        _broken("webp-truncated", webp[: len(webp) // 2], ".webp"),
        _broken("webp-corrupt-frame-header", _patched(webp, b"VP8 ", 8, bytes(20)), ".webp"),
        *(Item(name, "image", data, f"image/{sfx[1:]}", 413, TOO_LARGE, "media_too_large", sfx)
          for name, data, sfx in bombs),
        Item("png-1x1", "image", make_test_image(1, 1, "rgb"), "image/png", 200, suffix=".png"),
        Item("jpeg-1x1", "image", noise_image(1, 1, "JPEG"), "image/jpeg", 200, suffix=".jpg"),
    ]


def mislabelled_items(png: bytes, mp4: bytes) -> list[Item]:
    """Declared types that lie. Decoders decide, so a wrong subtype of the right kind works;
    a data URL that declares another kind is refused before decoding."""
    jpeg = noise_image(32, 32, "JPEG")
    return [
        Item("jpeg-declared-png", "image", jpeg, "image/png", 200, suffix=".png"),
        Item("png-declared-octet-stream", "image", png, "application/octet-stream", 200),
        Item("mp4-declared-png", "image", mp4, "image/png", 400, "not a readable image",
             "invalid_image", ".png"),
        Item("png-declared-mp4", "video", png, "video/mp4", 400, "still image", "invalid_video",
             ".mp4"),
        Item("png-declared-html", "image", png, "text/html", 400, "declares text/html",
             "invalid_data_url", transports=("data",)),
        Item("png-served-as-html", "image", png, "text/html", 200, transports=("url",)),
        Item("png-declared-image-in-video-part", "video", png, "image/png", 400,
             "declares image/png", "invalid_data_url", transports=("data",)),
        Item("mp4-declared-video-in-image-part", "image", mp4, "video/mp4", 400,
             "declares video/mp4", "invalid_data_url", transports=("data",)),
    ]


def bad_data_urls(png: bytes, max_image_bytes: int) -> list[Case]:
    b64 = base64.b64encode(png).decode()
    bad = "Invalid base64"
    cases = [
        ("illegal-characters", "data:image/png;base64,@@@@!!!!", bad),
        ("padding-in-the-middle", f"data:image/png;base64,{b64[:8]}=={b64[8:]}", bad),
        ("single-char", "data:image/png;base64,A", bad),
        ("non-ascii", f"data:image/png;base64,{b64[:40]}\u00e9\u00e9{b64[40:]}", bad),
        ("empty-payload", "data:image/png;base64,", "payload is empty"),
        ("no-comma", f"data:image/png;base64{b64}", "no ','"),
        ("mime-without-slash", f"data:png;base64,{b64}", "not a MIME type"),
        ("declared-text", "data:text/plain,hello", "declares text/plain"),
    ]
    truncated = f"data:image/png;base64,{b64[: len(b64) // 2]}"
    too_big = "data:image/png;base64," + "A" * (4 * (max_image_bytes // 3 + 1024))
    return [*(Case(f"data-url-{n}", "image", url, 400, words, "invalid_data_url")
              for n, url, words in cases),
            Case("data-url-truncated-png", "image", truncated, 400, "truncated|corrupt",
                 "invalid_image"),
            Case("data-url-over-size-cap", "image", too_big, 413, "limit", "media_too_large")]


def _sparse(path: Path, size: int) -> None:
    with path.open("wb") as fh:
        fh.truncate(size)


def plant_path_cases(root: Path, outside: Path, png: bytes, caps: tuple[int, int]
                     ) -> list[Case]:
    """Create traps under ``root`` (secrets in ``outside``) and the references probing them.

    ``caps``: the server's (image, video) byte limits, for the sparse over-cap files.
    """
    (outside / "secret.png").write_bytes(png)
    sibling = root.parent / f"{root.name}-evil"  # shares the root's name as a prefix
    sibling.mkdir(exist_ok=True)
    (sibling / "x.png").write_bytes(png)
    (root / "photo.png").write_bytes(png)
    (root / "sub").mkdir(exist_ok=True)
    links = {"link-out.png": outside / "secret.png", "dir-out": outside,
             "passwd.png": Path("/etc/passwd"), "dangling.png": outside / "missing.png",
             "loop-a.png": root / "loop-b.png", "loop-b.png": root / "loop-a.png",
             "alias.png": root / "photo.png"}
    for name, target in links.items():
        (root / name).symlink_to(target)
    os.mkfifo(root / "pipe.png")  # opening it for reading would block forever
    _sparse(root / "huge.png", caps[0] + 1)
    _sparse(root / "huge.mp4", caps[1] + 1)
    out, refused = outside.name, "outside the allowed media roots"
    forbidden = {
        "dotdot-relative": f"../{out}/secret.png",
        "dotdot-nested": f"sub/../../{out}/secret.png",
        "dotdot-absolute": f"{root}/../{out}/secret.png",
        "sibling-prefix": f"{sibling}/x.png",
        "file-url-dotdot": f"file://{root}/../{out}/secret.png",
        "file-url-encoded-dots": f"file://{root}/%2e%2e/{out}/secret.png",
        "file-url-uppercase-scheme": "FILE:///etc/passwd",
        "file-url-localhost": "file://localhost/etc/passwd",
        "home": "~/.ssh/id_rsa",
        "symlink-file-out": "link-out.png",
        "symlink-dir-out": "dir-out/secret.png",
        "symlink-to-etc-passwd": "passwd.png",
        "symlink-dangling-out": "dangling.png",
    }
    cases = [Case(name, "image", ref, 403, refused, "media_not_allowed")
             for name, ref in forbidden.items()]
    return [*cases,
            Case("file-url-remote-host", "image", "file://evil.example/etc/passwd", 403,
                 "must name a local file", "media_not_allowed"),
            Case("nul-byte", "image", "photo.png\x00/../../etc/passwd", 400, "Cannot open"),
            Case("symlink-loop", "image", "loop-a.png", 400, "Cannot open"),
            Case("fifo", "image", "pipe.png", 400, "not a regular file"),
            Case("directory", "image", "sub", 400, "not a regular file"),
            Case("sparse-image-over-cap", "image", "huge.png", 413, "limit", "media_too_large"),
            Case("sparse-video-over-cap", "video", "huge.mp4", 413, "limit", "media_too_large"),
            Case("symlink-inside-root", "image", "alias.png", 200)]


def redirect_targets(port: int) -> dict[str, tuple[str, int, str]]:
    """name -> (redirect Location, status, message regex) for redirects off the public host.

    Every private target is ``/secret`` on the test's own HTTP server (or an address that
    cannot be reached from here), so a guard that let one through is caught by its log.
    """
    private = "non-public address"
    return {
        "to-loopback": (f"http://127.0.0.1:{port}/secret", 403, private),
        "to-localhost-name": (f"http://localhost:{port}/secret", 403, private),
        "to-ipv6-loopback": (f"http://[::1]:{port}/secret", 403, private),
        "to-ipv4-mapped-ipv6": (f"http://[::ffff:127.0.0.1]:{port}/secret", 403, private),
        "to-decimal-loopback": (f"http://2130706433:{port}/secret", 403, private),
        "to-unspecified": (f"http://0.0.0.0:{port}/secret", 403, private),
        "to-cloud-metadata": ("http://169.254.169.254/latest/meta-data/", 403, private),
        "to-private-10": ("http://10.0.0.1/x.png", 403, private),
        "to-file-url": ("file:///etc/passwd", 400, "not an http"),
    }
