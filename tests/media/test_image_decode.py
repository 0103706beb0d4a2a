"""decode_image / load_image: RGB out, EXIF applied, bombs and broken files refused."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from PIL import Image

from vllm_mlx.media import (
    InvalidImage,
    MediaBytes,
    MediaPolicy,
    MediaTooLarge,
    decode_image,
    load_image,
)
from vllm_mlx.media.testing import make_test_image, png_header

RED, GREEN, BLUE, WHITE = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255)


def close(a: tuple[int, ...], b: tuple[int, ...], tol: int = 12) -> bool:
    return all(abs(x - y) <= tol for x, y in zip(a, b, strict=True))


@pytest.mark.parametrize("kind", ["rgb", "jpeg", "palette", "cmyk", "gif", "webp"])
def test_colour_kinds_decode_to_rgb(kind: str) -> None:
    img = decode_image(make_test_image(40, 20, kind))  # type: ignore[arg-type]
    assert img.mode == "RGB" and img.size == (40, 20)
    assert close(img.getpixel((2, 2)), RED)  # type: ignore[arg-type]
    assert close(img.getpixel((37, 2)), GREEN)  # type: ignore[arg-type]
    assert close(img.getpixel((2, 17)), BLUE)  # type: ignore[arg-type]
    assert close(img.getpixel((37, 17)), WHITE)  # type: ignore[arg-type]


def test_alpha_composited_on_white() -> None:
    img = decode_image(make_test_image(40, 20, "rgba"))
    assert img.mode == "RGB"
    assert img.getpixel((2, 2)) == WHITE  # transparent half
    assert img.getpixel((37, 2)) == RED


def test_palette_transparency_composited_on_white() -> None:
    img = decode_image(make_test_image(40, 20, "palette_transparent"))
    assert img.mode == "RGB" and img.getpixel((2, 2)) == WHITE  # the red index is transparent
    assert close(img.getpixel((2, 17)), BLUE)  # type: ignore[arg-type]


def test_grey_and_16_bit() -> None:
    assert decode_image(make_test_image(40, 20, "gray")).mode == "RGB"
    img = decode_image(make_test_image(64, 64, "gray16"))
    assert img.mode == "RGB"
    assert img.getpixel((0, 0)) == (0, 0, 0)
    assert img.getpixel((63, 63)) == WHITE  # 65535 maps to 255, not clipped garbage
    assert 100 < img.getpixel((0, 32))[0] < 156  # type: ignore[index]


def test_exif_orientation_applied() -> None:
    img = decode_image(make_test_image(40, 20, "exif_rotated"))
    assert img.size == (20, 40)  # orientation 6: displayed rotated 90 degrees clockwise
    assert close(img.getpixel((2, 2)), BLUE)  # type: ignore[arg-type]
    assert close(img.getpixel((17, 2)), RED)  # type: ignore[arg-type]


def test_one_pixel_image() -> None:
    img = decode_image(make_test_image(1, 1, "rgb"))
    assert img.size == (1, 1) and img.mode == "RGB"


@pytest.mark.parametrize("kind", ["rgb", "jpeg"])
def test_truncated_images(kind: str) -> None:
    data = make_test_image(64, 64, kind)  # type: ignore[arg-type]
    with pytest.raises(InvalidImage) as info:
        decode_image(data[: len(data) // 2])
    assert info.value.code == "invalid_image" and info.value.status_code == 400


@pytest.mark.parametrize("data", [b"", b"not an image at all", b"\x89PNG\r\n\x1a\n"])
def test_garbage(data: bytes) -> None:
    with pytest.raises(InvalidImage, match="not a readable image|could not be opened"):
        decode_image(data)


@pytest.mark.parametrize("size", [(100_000, 100_000), (9000, 8000)], ids=["pillow", "policy"])
def test_decompression_bomb(size: tuple[int, int]) -> None:
    before = Image.MAX_IMAGE_PIXELS
    with pytest.raises(MediaTooLarge) as info:
        decode_image(png_header(*size))
    assert info.value.status_code == 413
    assert before == Image.MAX_IMAGE_PIXELS  # global Pillow state untouched


def test_policy_pixel_limit_is_per_call() -> None:
    data = make_test_image(20, 20, "rgb")
    with pytest.raises(MediaTooLarge, match="400 pixels"):
        decode_image(data, policy=MediaPolicy(max_image_pixels=399))
    assert decode_image(data).size == (20, 20)


def test_media_bytes_inputs(tmp_path: Path) -> None:
    path = tmp_path / "a.png"
    path.write_bytes(make_test_image(8, 6, "rgb"))
    from_path = decode_image(MediaBytes(None, path, "image/png", "a.png"))
    from_data = decode_image(MediaBytes(path.read_bytes(), None, "image/png", "inline"))
    assert from_path.tobytes() == from_data.tobytes()


def test_error_names_the_origin(tmp_path: Path) -> None:
    with pytest.raises(InvalidImage, match="photo.jpg"):
        decode_image(MediaBytes(b"garbage", None, None, "photo.jpg"))


def test_load_image(tmp_path: Path) -> None:
    path = tmp_path / "photo.png"
    path.write_bytes(make_test_image(8, 6, "rgba"))
    policy = MediaPolicy(media_roots=(tmp_path,))
    assert load_image("photo.png", policy).mode == "RGB"
    assert load_image(path, policy).size == (8, 6)
    b64 = base64.b64encode(path.read_bytes()).decode()
    assert load_image(f"data:image/png;base64,{b64}", MediaPolicy()).size == (8, 6)
    assert load_image(Image.new("RGBA", (3, 2)), MediaPolicy()).mode == "RGB"
    trusted = MediaPolicy.trusted(cwd=tmp_path)
    assert load_image("photo.png", trusted).size == (8, 6)
    assert load_image(str(path), trusted).size == (8, 6)
