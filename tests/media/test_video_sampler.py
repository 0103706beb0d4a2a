"""sample_video on generated clips whose frames carry their own index."""

from __future__ import annotations

import bisect
import math
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from vllm_mlx.media import (
    MediaBytes,
    MediaNotAllowed,
    MediaPolicy,
    probe_video,
    sample_video,
)
from vllm_mlx.media.testing import frame_schedule, read_frame_index, write_test_video

Clip = Callable[..., bytes]


def expected_indices(schedule: list[float], duration: float, count: int) -> list[int]:
    wanted = [(i + 0.5) * duration / count for i in range(count)]
    return [max(0, bisect.bisect_right(schedule, t) - 1) for t in wanted]


def shown(frames: np.ndarray) -> list[int]:
    return [read_frame_index(frame) for frame in frames]


@pytest.mark.parametrize(
    ("seconds", "fps", "max_frames", "count"),
    [(10, 2.0, 64, 20), (10, 2.0, 8, 8), (3, 0.1, 64, 1), (3, 2.0, 1, 1), (3, 30.0, 64, 64)],
)
def test_counts_timestamps_and_content(
    clip: Clip, seconds: float, fps: float, max_frames: int, count: int
) -> None:
    video = sample_video(clip(seconds, 30), fps=fps, max_frames=max_frames)
    assert video.frames.shape == (count, 64, 96, 3) and video.frames.dtype == np.uint8
    assert video.duration == pytest.approx(seconds)
    assert video.timestamps == pytest.approx([(i + 0.5) * seconds / count for i in range(count)])
    want = expected_indices(frame_schedule(seconds, 30), seconds, count)
    assert video.frame_indices == want
    assert shown(video.frames) == want  # the pixels are those of the frame shown at t_i
    assert all(t <= ts for t, ts in zip(video.frame_times, video.timestamps, strict=True))
    assert video.source_fps == pytest.approx(30)
    assert (video.width, video.height) == (96, 64)
    assert video.sampled_fps == pytest.approx(count / seconds)
    assert video.requested_fps == fps


def test_ten_seconds_at_two_fps_picks_centres(clip: Clip) -> None:
    video = sample_video(clip(10, 30), fps=2.0, max_frames=64)
    assert len(video.frames) == 20
    assert video.frame_indices[:3] == [7, 22, 37]  # t = 0.25, 0.75, 1.25 s at 30 fps
    assert video.frame_indices == sorted(video.frame_indices)


def test_single_frame_video(clip: Clip) -> None:
    video = sample_video(clip(1 / 30, 30), fps=2.0)
    assert video.frames.shape[0] == 1
    assert video.frame_indices == [0]
    assert shown(video.frames) == [0]


def test_min_frames_and_cap(clip: Clip) -> None:
    assert len(sample_video(clip(1, 30), fps=1.0, min_frames=4).frames) == 4
    assert len(sample_video(clip(1, 30), fps=1.0, min_frames=4, max_frames=2).frames) == 2


def test_fewer_source_frames_than_samples_repeats_frames(clip: Clip) -> None:
    video = sample_video(clip(4, 1), fps=2.0)  # 4 frames, 8 samples
    assert video.frame_indices == [0, 0, 1, 1, 2, 2, 3, 3]
    assert shown(video.frames) == video.frame_indices


def test_variable_frame_rate_picks_by_pts(clip: Clip) -> None:
    data = clip(3, 30, vfr=True)
    schedule = frame_schedule(3, 30, vfr=True)
    deltas = np.diff(schedule)
    assert deltas.min() < deltas.max() / 3  # really variable
    video = sample_video(data, fps=4.0)
    duration = video.duration
    assert duration == pytest.approx(3.0, abs=0.05)
    assert len(video.frames) == math.ceil(duration * 4 - 1e-9)
    want = expected_indices(schedule, duration, len(video.frames))
    assert video.frame_indices == want
    assert shown(video.frames) == want
    cfr_guess = [math.floor(t * 30) for t in video.timestamps]  # index = t * fps is wrong here
    assert cfr_guess != want


def test_mpeg4_codec(clip: Clip) -> None:
    video = sample_video(clip(2, 25, codec="mpeg4"), fps=2.0)
    want = expected_indices(frame_schedule(2, 25), 2.0, 4)
    assert shown(video.frames) == want == video.frame_indices


def test_max_side_downscales(clip: Clip) -> None:
    video = sample_video(clip(1, 30), fps=2.0, max_side=48)
    assert video.frames.shape == (2, 32, 48, 3)
    assert (video.width, video.height) == (96, 64)
    assert shown(video.frames) == video.frame_indices


def test_display_rotation_applied() -> None:
    data = write_test_video(None, seconds=1, fps=10, size=(96, 64), rotation=90)
    assert isinstance(data, bytes)
    video = sample_video(data, fps=2.0)
    assert video.frames.shape == (2, 96, 64, 3)
    assert (video.width, video.height) == (64, 96)


def test_no_temp_files(clip: Clip) -> None:
    data = clip(2, 30)
    before = sorted(os.listdir(tempfile.gettempdir()))
    video = sample_video(data, fps=2.0)
    video.to_pil()
    assert sorted(os.listdir(tempfile.gettempdir())) == before


def test_path_inputs(clip: Clip, tmp_path: Path) -> None:
    path = tmp_path / "clip.mp4"
    path.write_bytes(clip(2, 30))
    policy = MediaPolicy(media_roots=(tmp_path,))
    by_str = sample_video("clip.mp4", fps=2.0, policy=policy)  # relative to the media root
    by_path = sample_video(path, fps=2.0, policy=policy)
    by_media = sample_video(MediaBytes(None, path, "video/mp4", "clip.mp4"), fps=2.0)
    for video in (by_str, by_path, by_media):
        assert video.frame_indices == [7, 22, 37, 52]
    assert by_str.origin == "clip.mp4"
    with pytest.raises(MediaNotAllowed, match="--media-root"):
        sample_video(str(path), fps=2.0)  # default policy: no media roots


def test_to_pil_and_probe(clip: Clip) -> None:
    video = sample_video(clip(1, 30), fps=2.0)
    images = video.to_pil()
    assert len(images) == 2 and images[0].size == (96, 64) and images[0].mode == "RGB"
    info = probe_video(clip(10, 30))
    assert info.duration == pytest.approx(10) and info.source_fps == pytest.approx(30)
    assert (info.width, info.height, info.codec) == (96, 64, "h264")


@pytest.mark.parametrize("container", ["matroska", "mpegts", "h264"])
def test_other_containers(container: str) -> None:
    import io

    import av

    from vllm_mlx.media.testing import render_frame

    buf = io.BytesIO()
    with av.open(buf, "w", format=container) as out:
        stream = out.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = 96, 64, "yuv420p"
        for k in range(60):
            frame = av.VideoFrame.from_ndarray(render_frame(k, 96, 64), format="rgb24")
            frame.pts = k
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    video = sample_video(buf.getvalue(), fps=2.0)
    # raw H.264 has no timestamps: FFmpeg assumes 25 fps, so the clip lasts 2.4 s there
    assert video.duration == pytest.approx(2.4 if container == "h264" else 2.0)
    assert shown(video.frames) == video.frame_indices
    assert video.frame_indices == sorted(video.frame_indices)
