"""``VideoStream`` and its frame sources, without a server: pacing, message format,
callback scheduling, back-pressure, files, the test pattern, and a missing camera."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import sys
import threading
import time

import pytest
from PIL import Image

from vllm_mlx.stream import (
    FileSource,
    SourceError,
    TestPatternSource,
    VideoStream,
    pattern_index,
)
from vllm_mlx.stream.client import Pacer
from vllm_mlx.stream.sources import CameraSource


def decode(message: str) -> tuple[float, Image.Image]:
    data = json.loads(message)
    assert set(data) == {"timestamp", "frame"}
    return data["timestamp"], Image.open(io.BytesIO(base64.b64decode(data["frame"])))


def collect(stream_kwargs: dict, seconds: float) -> tuple[list[str], VideoStream]:
    messages: list[str] = []
    stream = VideoStream(messages.append, **stream_kwargs)
    stream.start()
    time.sleep(seconds)
    stream.stop()
    return messages, stream


def test_messages_are_the_seeds_json_with_jpeg_frames():
    source = TestPatternSource((160, 120))
    messages, stream = collect({"fps": 20, "resolution": (160, 120), "jpeg_quality": 50,
                                "source": source}, 0.5)
    assert 5 <= len(messages) <= 12  # about 20 fps for half a second
    stamps, images = zip(*(decode(m) for m in messages))
    assert all(img.format == "JPEG" and img.size == (160, 120) for img in images)
    assert list(stamps) == sorted(stamps) and abs(stamps[-1] - time.time()) < 2
    indices = [pattern_index(img) for img in images]
    assert indices == list(range(len(indices)))  # nothing skipped when keeping up
    assert not stream.running and stream.stats.sent == len(messages)


def test_fps_is_held():
    messages, _ = collect({"fps": 10, "source": TestPatternSource((64, 48))}, 1.05)
    assert 8 <= len(messages) <= 12


def test_video_file_source(tmp_path):
    from vllm_mlx.media.testing import write_test_video

    path = write_test_video(tmp_path / "clip.mp4", seconds=1, fps=10, size=(64, 48))
    messages, _ = collect({"fps": 50, "resolution": (32, 24), "source": str(path)}, 0.6)
    assert len(messages) > 10  # loops past the clip's 10 frames
    assert all(decode(m)[1].size == (32, 24) for m in messages)


def test_file_source_without_loop_ends(tmp_path):
    from vllm_mlx.media.testing import write_test_video

    path = write_test_video(tmp_path / "clip.mp4", seconds=1, fps=10, size=(64, 48))
    stream = VideoStream(None, fps=100, source=FileSource(path, (64, 48), loop=False))
    stream.start()
    assert stream.wait(10) and stream.stats.captured == 10 and stream.error is None


def test_unreadable_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video")
    with pytest.raises(SourceError, match="could not open video file"):
        VideoStream(print, source=bad).start()


def test_missing_camera_is_a_clear_error():
    expected = "no camera at /dev/video57" if sys.platform == "linux" else "camera"
    with pytest.raises(SourceError, match=expected):
        VideoStream(print, device_index=57).start()
    with pytest.raises(SourceError):
        CameraSource(57)


def test_slow_callback_makes_it_skip_not_queue():
    release = threading.Event()
    calls: list[str] = []

    def slow(message: str) -> None:
        calls.append(message)
        release.wait(0.3)

    stream = VideoStream(slow, fps=60, source=TestPatternSource((64, 48)))
    stream.start()
    time.sleep(1.0)
    stream.stop()
    # the capture thread was blocked ~0.3 s per call: late frames are skipped, none queued
    assert len(calls) <= 5 and stream.stats.skipped >= 2
    assert stream.stats.captured < 15


async def test_seed_lambda_runs_on_the_event_loop():
    loop = asyncio.get_running_loop()
    seen: list[tuple[str, bool]] = []

    async def send(message: str) -> None:
        seen.append((message, asyncio.get_running_loop() is loop))

    stream = VideoStream(frame_callback=lambda frame: asyncio.create_task(send(frame)),
                         fps=30, resolution=(64, 48), source=TestPatternSource((64, 48)))
    stream.start()
    await asyncio.sleep(0.4)
    stream.stop()
    assert len(seen) >= 5 and all(on_loop for _, on_loop in seen)


async def test_coroutine_callback_and_pending_limit():
    started: list[str] = []
    gate = asyncio.Event()

    async def stuck_send(message: str) -> None:
        started.append(message)
        await gate.wait()

    stream = VideoStream(stuck_send, fps=60, max_pending=3, source=TestPatternSource((64, 48)))
    stream.start()
    await asyncio.sleep(0.5)
    assert len(started) == 3 and stream.stats.skipped > 10  # a stalled network: skip frames
    gate.set()
    await asyncio.sleep(0.2)
    assert len(started) > 3
    stream.stop()


def test_coroutine_callback_without_a_running_loop():
    got: list[str] = []

    async def send(message: str) -> None:
        got.append(message)

    messages_stream = VideoStream(send, fps=30, source=TestPatternSource((64, 48)))
    messages_stream.start()
    time.sleep(0.4)
    messages_stream.stop()
    assert len(got) >= 5
    # stop() lets what was already scheduled finish, then closes its loop (a send left
    # pending was dropped: 'coroutine ... was never awaited')
    assert len(got) == messages_stream.stats.sent


def test_pacer_pulls_at_fps_and_skips_when_late():
    pacer = Pacer(10)
    assert pacer.decide(0.0, live=False, fresh=False) == ("send", 0.0)
    decision, wait = pacer.decide(0.01, live=False, fresh=False)
    assert decision == "send" and wait == pytest.approx(0.09)
    assert pacer.decide(0.35, live=False, fresh=False)[0] == "skip"  # 150 ms late
    assert pacer.decide(0.41, live=False, fresh=False)[0] == "send"  # back on schedule


def test_pacer_live_source_decimates_but_never_starves():
    fast = Pacer(10)
    decisions = [fast.decide(i / 30, live=True, fresh=True)[0] for i in range(300)]
    assert abs(decisions.count("send") - 100) <= 1  # a 30 fps camera held to 10 fps
    slow = Pacer(30)
    decisions = [slow.decide(i / 10, live=True, fresh=True)[0] for i in range(10)]
    assert decisions == ["send"] * 10  # a 10 fps camera is not "behind" a 30 fps target
    buffered = Pacer(30)
    buffered.decide(0.0, live=True, fresh=True)
    assert buffered.decide(0.5, live=True, fresh=False)[0] == "skip"  # stale buffered frame


def test_invalid_arguments():
    for bad in ({"fps": 0}, {"fps": float("nan")}, {"fps": float("inf")},
                {"jpeg_quality": 101}, {"resolution": (0, 0)}, {"resolution": (-5, 10)}):
        with pytest.raises(ValueError):
            VideoStream(**bad)


def test_a_stream_on_a_source_object_restarts():
    """The caller's source object is the caller's: stop() leaves it usable."""
    messages: list[str] = []
    stream = VideoStream(messages.append, fps=50, source=TestPatternSource((32, 24)))
    for _ in range(2):
        before = len(messages)
        stream.start()
        time.sleep(0.3)
        stream.stop()
        assert len(messages) > before
