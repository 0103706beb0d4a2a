"""sample_video refuses bad input with clear InvalidVideo / MediaTooLarge errors."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest

from vllm_mlx.media import (
    InvalidMediaParameter,
    InvalidVideo,
    MediaPolicy,
    MediaTooLarge,
    sample_video,
)
from vllm_mlx.media import videoinfo as videoinfo_module
from vllm_mlx.media.testing import make_test_image, read_frame_index, write_test_audio

Clip = Callable[..., bytes]


def audio_only(codec: str) -> bytes:
    data = write_test_audio(None, seconds=0.5, codec=codec)  # type: ignore[arg-type]
    assert isinstance(data, bytes)
    return data


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"", "not a readable video"),
        (bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8)), "not a readable"),
        (b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 64, "not a readable video"),
        (make_test_image(32, 32, "jpeg"), "still image"),
        (make_test_image(32, 32, "rgb"), "still image"),
    ],
    ids=["empty", "random", "ftyp-only", "jpeg", "png"],
)
def test_not_a_video(data: bytes, words: str) -> None:
    with pytest.raises(InvalidVideo, match=words) as info:
        sample_video(data)
    assert info.value.code == "invalid_video" and info.value.status_code == 400


def _jpeg_pdf() -> bytes:
    """A PDF whose page is a JPEG: FFmpeg's probe takes it for an MJPEG stream."""
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 30, 30)).save(buffer, format="PDF")
    return buffer.getvalue()


def test_pdf_is_not_a_video(tmp_path) -> None:
    with pytest.raises(InvalidVideo, match="PDF document"):
        sample_video(_jpeg_pdf())
    (tmp_path / "doc.pdf").write_bytes(_jpeg_pdf())
    with pytest.raises(InvalidVideo, match="PDF document"):
        sample_video(tmp_path / "doc.pdf", policy=MediaPolicy.trusted())


@pytest.mark.parametrize("codec", ["aac", "mp3"])
def test_audio_only_mp4(codec: str) -> None:
    with pytest.raises(InvalidVideo, match=r"no video stream \(streams found: audio\)"):
        sample_video(audio_only(codec))


@pytest.mark.parametrize("fraction", [0.9, 0.5, 0.1])
def test_truncated_mp4(clip: Clip, fraction: float) -> None:
    data = clip(2, 30)
    with pytest.raises(InvalidVideo, match="corrupt|truncated|not a readable"):
        sample_video(data[: int(len(data) * fraction)])


def test_corrupt_frames(clip: Clip) -> None:
    data = bytearray(clip(4, 30))
    mdat, moov = data.find(b"mdat"), data.find(b"moov")
    assert 0 < mdat < moov  # garble frame data only, not the index
    start = mdat + (moov - mdat) // 3
    data[start : start + 500] = np.random.default_rng(1).integers(0, 256, 500, np.uint8).tobytes()
    with pytest.raises(InvalidVideo, match="corrupt or truncated"):
        sample_video(bytes(data))


def test_stream_duration_longer_than_frames_is_truncation(
    clip: Clip, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(videoinfo_module, "_header_duration", lambda c, s: (20.0, "stream"))
    with pytest.raises(InvalidVideo, match="truncated"):
        sample_video(clip(2, 30), fps=2.0)


def test_overstated_container_duration_is_remeasured(
    clip: Clip, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(videoinfo_module, "_header_duration", lambda c, s: (20.0, "container"))
    video = sample_video(clip(2, 30), fps=2.0)
    assert video.duration == pytest.approx(2.0)
    assert video.frame_indices == [7, 22, 37, 52]
    assert [read_frame_index(f) for f in video.frames] == video.frame_indices


def test_missing_duration_is_measured(clip: Clip, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(videoinfo_module, "_header_duration", lambda c, s: (None, None))
    video = sample_video(clip(2, 30), fps=2.0)
    assert video.duration == pytest.approx(2.0)
    assert video.frame_indices == [7, 22, 37, 52]


@pytest.mark.parametrize(
    ("policy", "words"),
    [
        (MediaPolicy(max_video_frame_pixels=1000), "pixels per frame"),
        (MediaPolicy(max_video_duration_s=5), "duration of 10 s"),
        (MediaPolicy(max_video_frames_decoded=10), "more than 10 frames"),
        (MediaPolicy(max_video_bytes=100), "over this server's limit of 100 bytes"),
    ],
    ids=["pixels", "duration", "frames", "bytes"],
)
def test_limits(clip: Clip, policy: MediaPolicy, words: str) -> None:
    with pytest.raises(MediaTooLarge, match=words) as info:
        sample_video(clip(10, 30), fps=2.0, policy=policy)
    assert info.value.status_code == 413 and info.value.code == "media_too_large"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"fps": 0},
        {"fps": -2.0},
        {"fps": math.nan},
        {"max_frames": 0},
        {"min_frames": 0},
        {"max_side": 0},
    ],
)
def test_bad_parameters(clip: Clip, kwargs: dict[str, float]) -> None:
    with pytest.raises(InvalidMediaParameter) as info:
        sample_video(clip(1, 30), **kwargs)  # type: ignore[arg-type]
    assert isinstance(info.value, ValueError) and info.value.code == "invalid_parameter"
