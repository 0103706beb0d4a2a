"""MP4 writing (PyAV, H.264) and frame interpolation."""

from __future__ import annotations

import io

import av
import numpy as np
import pytest

from vllm_mlx.diffusion import encode_mp4, interpolate_frames, write_mp4
from vllm_mlx.diffusion.video_io import minterpolate_available


def clip(n: int = 9, h: int = 32, w: int = 48) -> np.ndarray:
    frames = np.zeros((n, h, w, 3), dtype=np.uint8)
    for i in range(n):
        frames[i, :, (i * 4) % w : (i * 4) % w + 8] = (200, 120, 40)
        frames[i, h // 2 :, :, 2] = 30 * i % 256
    return frames


def decode(source) -> tuple[list[np.ndarray], av.video.stream.VideoStream]:
    with av.open(source) as container:
        stream = container.streams.video[0]
        info = (stream.codec_context.name, stream.codec_context.pix_fmt, stream.average_rate)
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
    return frames, info


def test_write_mp4_path_is_decodable_with_right_count_and_size(tmp_path):
    frames = clip()
    target = tmp_path / "out.mp4"
    write_mp4(frames, 8, target)
    decoded, (codec, pix_fmt, rate) = decode(str(target))
    assert codec == "h264" and pix_fmt == "yuv420p" and rate == 8
    assert len(decoded) == 9 and decoded[0].shape == (32, 48, 3)
    assert np.abs(decoded[4].astype(int) - frames[4].astype(int)).mean() < 12
    assert [p.name for p in tmp_path.iterdir()] == ["out.mp4"]  # no temp file left


def test_write_mp4_to_buffer_and_bytes():
    frames = clip(5)
    buffer = io.BytesIO()
    write_mp4(frames, 16, buffer)
    data = encode_mp4(frames, 16)
    assert buffer.getvalue()[4:8] == b"ftyp" and data[4:8] == b"ftyp"
    decoded, _ = decode(io.BytesIO(data))
    assert len(decoded) == 5


def test_odd_sizes_are_padded_to_even(tmp_path):
    write_mp4(clip(3, 31, 45), 8, tmp_path / "odd.mp4")
    decoded, _ = decode(str(tmp_path / "odd.mp4"))
    assert decoded[0].shape == (32, 46, 3)


def test_write_mp4_rejects_bad_input(tmp_path):
    with pytest.raises(ValueError):
        write_mp4(np.zeros((3, 8, 8), np.uint8), 8, tmp_path / "x.mp4")
    with pytest.raises(ValueError):
        write_mp4(np.zeros((3, 8, 8, 3), np.float32), 8, tmp_path / "x.mp4")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("method", ["blend", "auto"])
@pytest.mark.parametrize("n,exp", [(9, 0), (9, 1), (5, 2), (2, 3), (1, 2)])
def test_interpolation_count_formula(method, n, exp):
    frames = clip(n)
    out, fps = interpolate_frames(frames, 8, exp, method=method)
    assert out.shape == ((n - 1) * 2**exp + 1, 32, 48, 3) and out.dtype == np.uint8
    assert fps == 8 * 2**exp
    assert np.array_equal(out[:: 2**exp], frames)  # originals kept exactly


def test_blend_is_linear():
    frames = np.stack([np.zeros((4, 4, 3), np.uint8), np.full((4, 4, 3), 200, np.uint8)])
    out, _ = interpolate_frames(frames, 8, 2, method="blend")
    assert [int(f[0, 0, 0]) for f in out] == [0, 50, 100, 150, 200]


@pytest.mark.skipif(not minterpolate_available(), reason="ffmpeg minterpolate missing")
def test_minterpolate_produces_in_between_frames():
    frames = clip(4)
    out, _ = interpolate_frames(frames, 8, 1, method="minterpolate")
    blend, _ = interpolate_frames(frames, 8, 1, method="blend")
    assert out.shape == blend.shape
    assert not np.array_equal(out[1::2], blend[1::2])


def test_interpolation_rejects_bad_arguments():
    with pytest.raises(ValueError):
        interpolate_frames(clip(3), 8, 1, method="rife")
    with pytest.raises(ValueError):
        interpolate_frames(clip(3), 8, -1)
