"""load_source for data URLs, bare base64, local paths and file:// URLs."""

from __future__ import annotations

import base64
import os
from pathlib import Path
from urllib.parse import quote_from_bytes

import pytest

from vllm_mlx.media import (
    InvalidDataURL,
    MediaError,
    MediaFetchError,
    MediaNotAllowed,
    MediaPolicy,
    MediaTooLarge,
    load_source,
    load_source_sync,
)
from vllm_mlx.media.testing import make_test_image

PNG = make_test_image(4, 4, "rgb")
B64 = base64.b64encode(PNG).decode()


def test_data_url() -> None:
    media = load_source_sync(f"data:image/png;base64,{B64}", kind="image", policy=MediaPolicy())
    assert media.data == PNG and media.path is None and media.mime == "image/png"
    assert B64 not in media.origin and media.origin.startswith("data:image/png")


@pytest.mark.parametrize(
    "url",
    [
        f"data:image/png;base64,{B64[:20]}\n {B64[20:]}",  # whitespace / line breaks
        f"data:image/png;base64,{B64.rstrip('=')}",  # missing padding
        f"data:image/png;base64,{base64.urlsafe_b64encode(PNG).decode()}",  # URL-safe alphabet
        f"data:image/png;base64,{B64.replace('+', '%2B').replace('/', '%2F')}",  # %-encoded
        f"DATA:IMAGE/PNG;BASE64,{B64}",
        f"data:image/png;name=a.png;base64,{B64}",
        f"data:image/png,{quote_from_bytes(PNG)}",  # no ;base64: percent-encoded bytes
        f"data:;base64,{B64}",  # no MIME type
        f"data:application/octet-stream;base64,{B64}",
    ],
)
def test_data_url_variants(url: str) -> None:
    media = load_source_sync(url, kind="image", policy=MediaPolicy())
    assert media.data == PNG and media.mime == "image/png"


@pytest.mark.parametrize(
    "url",
    [
        "data:image/png;base64,not*base64!",
        "data:image/png;base64,QUJD=QUJD",
        "data:image/png;base64,A",
        "data:image/png;base64,",
        "data:image/png;base64",
        "data:notamime;base64,QUJD",
        "data:image/png;base64,QUJDé",
    ],
)
def test_bad_data_urls(url: str) -> None:
    with pytest.raises(InvalidDataURL) as info:
        load_source_sync(url, kind="image", policy=MediaPolicy())
    assert info.value.code == "invalid_data_url" and info.value.status_code == 400


def test_data_url_kind_mismatch_is_refused() -> None:
    with pytest.raises(InvalidDataURL, match="image/png.*video"):
        load_source_sync(f"data:image/png;base64,{B64}", kind="video", policy=MediaPolicy())
    with pytest.raises(InvalidDataURL, match="video/mp4"):
        load_source_sync(f"data:video/mp4;base64,{B64}", kind="image", policy=MediaPolicy())
    video = load_source_sync(f"data:video/mp4;base64,{B64}", kind="video", policy=MediaPolicy())
    assert video.mime == "video/mp4"


def test_data_url_byte_cap() -> None:
    policy = MediaPolicy(max_image_bytes=len(PNG) - 1)
    with pytest.raises(MediaTooLarge):
        load_source_sync(f"data:image/png;base64,{B64}", kind="image", policy=policy)
    with pytest.raises(MediaTooLarge):
        load_source_sync("data:image/png;base64," + "A" * 10_000, kind="image", policy=policy)


def test_bare_base64() -> None:
    jpeg = make_test_image(8, 8, "jpeg")
    media = load_source_sync(base64.b64encode(jpeg).decode(), kind="image", policy=MediaPolicy())
    assert media.data == jpeg and media.mime == "image/jpeg"
    assert media.origin.startswith("base64")


def test_short_or_non_media_base64_is_a_path() -> None:
    for text in ("QUJD", base64.b64encode(b"x" * 200).decode()):
        with pytest.raises(MediaNotAllowed, match="no.*media root|media roots"):
            load_source_sync(text, kind="image", policy=MediaPolicy())


@pytest.fixture()
def root(tmp_path: Path) -> Path:
    media = tmp_path / "media"
    (media / "sub").mkdir(parents=True)
    (media / "a.png").write_bytes(PNG)
    (media / "sub" / "b.png").write_bytes(PNG)
    (tmp_path / "secret.png").write_bytes(PNG)
    return media


def test_local_path_under_root(root: Path) -> None:
    policy = MediaPolicy(media_roots=(root,))
    media = load_source_sync(str(root / "a.png"), kind="image", policy=policy)
    assert media.path == (root / "a.png").resolve() and media.data is None
    assert media.mime == "image/png" and media.read() == PNG
    relative = load_source_sync("sub/b.png", kind="image", policy=policy)
    assert relative.path == (root / "sub" / "b.png").resolve()
    inner_dots = load_source_sync("sub/../a.png", kind="image", policy=policy)
    assert inner_dots.path == (root / "a.png").resolve()


def test_a_missing_relative_path_says_where_it_was_looked_for(root: Path) -> None:
    """A client's 'video.mp4' is read under the server's media root, not the client's
    folder; 'Local file not found' alone sent users looking in the wrong place."""
    policy = MediaPolicy(media_roots=(root,))
    with pytest.raises(MediaFetchError, match="--media-root") as info:
        load_source_sync("missing.mp4", kind="video", policy=policy)
    assert str(root) in str(info.value)


def test_home_expansion(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(root))
    policy = MediaPolicy(media_roots=(Path("~"),))
    assert load_source_sync("~/a.png", kind="image", policy=policy).read() == PNG


@pytest.mark.parametrize(
    "source",
    ["{tmp}/secret.png", "../secret.png", "sub/../../secret.png", "/etc/passwd", "/nonexistent"],
)
def test_outside_root_refused(root: Path, source: str) -> None:
    policy = MediaPolicy(media_roots=(root,))
    with pytest.raises(MediaNotAllowed) as info:
        load_source_sync(source.format(tmp=root.parent), kind="image", policy=policy)
    message = str(info.value)
    assert str(root.resolve()) in message and "--media-root DIR" in message
    assert info.value.status_code == 403 and info.value.code == "media_not_allowed"


def test_symlinks(root: Path) -> None:
    policy = MediaPolicy(media_roots=(root,))
    os.symlink(root.parent / "secret.png", root / "escape.png")
    os.symlink(root.parent, root / "escape_dir")
    os.symlink(root / "a.png", root / "inside.png")
    for name in ("escape.png", "escape_dir/secret.png"):
        with pytest.raises(MediaNotAllowed):
            load_source_sync(name, kind="image", policy=policy)
    inside = load_source_sync("inside.png", kind="image", policy=policy)
    assert inside.path == (root / "a.png").resolve()


def test_root_given_through_a_symlink(root: Path) -> None:
    link = root.parent / "link_to_media"
    os.symlink(root, link)
    media = load_source_sync(str(link / "a.png"), kind="image", policy=MediaPolicy((link,)))
    assert media.read() == PNG


def test_no_roots_or_disabled(root: Path) -> None:
    with pytest.raises(MediaNotAllowed, match="none is configured.*--media-root"):
        load_source_sync(str(root / "a.png"), kind="image", policy=MediaPolicy())
    disabled = MediaPolicy(media_roots=(root,), allow_local_paths=False)
    with pytest.raises(MediaNotAllowed, match="disabled"):
        load_source_sync(str(root / "a.png"), kind="image", policy=disabled)


def test_missing_directory_and_large_files(root: Path) -> None:
    policy = MediaPolicy(media_roots=(root,))
    with pytest.raises(MediaFetchError, match="not found"):
        load_source_sync("missing.png", kind="image", policy=policy)
    with pytest.raises(MediaFetchError, match="not a regular file"):
        load_source_sync("sub", kind="image", policy=policy)
    with pytest.raises(MediaTooLarge):
        load_source_sync("a.png", kind="image", policy=MediaPolicy((root,), max_image_bytes=10))


def test_file_urls(root: Path) -> None:
    policy = MediaPolicy(media_roots=(root,))
    for url in (f"file://{root}/a.png", f"file://localhost{root}/a.png", f"file:{root}/a.png"):
        assert load_source_sync(url, kind="image", policy=policy).read() == PNG
    spaced = root / "with space.png"
    spaced.write_bytes(PNG)
    assert load_source_sync(f"file://{root}/with%20space.png", kind="image", policy=policy)
    with pytest.raises(MediaNotAllowed):
        load_source_sync(f"file://{root.parent}/secret.png", kind="image", policy=policy)
    with pytest.raises(MediaNotAllowed, match="host"):
        load_source_sync("file://server/share/a.png", kind="image", policy=policy)


def test_path_objects_and_unsupported_schemes(root: Path) -> None:
    policy = MediaPolicy(media_roots=(root,))
    assert load_source_sync(root / "a.png", kind="image", policy=policy).read() == PNG
    with pytest.raises(MediaError, match="Unsupported URL scheme 'ftp'") as info:
        load_source_sync("ftp://example.com/a.png", kind="image", policy=policy)
    assert info.value.code == "invalid_media_source" and info.value.status_code == 400
    with pytest.raises(MediaError, match="Empty"):
        load_source_sync("  ", kind="image", policy=policy)


async def test_async_twin(root: Path) -> None:
    policy = MediaPolicy(media_roots=(root,))
    media = await load_source("a.png", kind="image", policy=policy)
    assert media.read() == PNG
    big = await load_source(
        f"data:image/png;base64,{B64}" + "\n" * (2 << 20), kind="image", policy=policy
    )
    assert big.data == PNG
