"""The pure frame-selection functions (no decoding)."""

from __future__ import annotations

import bisect
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vllm_mlx.media import InvalidMediaParameter, MediaError
from vllm_mlx.media.sampling import (
    FramePicker,
    choose_frames,
    frame_count,
    sample_times,
    select_frame_indices,
)


@pytest.mark.parametrize(
    ("duration", "fps", "max_frames", "min_frames", "expected"),
    [
        (10.0, 2.0, 64, 1, 20),
        (10.0, 2.0, 8, 1, 8),
        (3.0, 0.1, 64, 1, 1),
        (3.0, 2.0, 1, 1, 1),
        (1 / 30, 2.0, 64, 1, 1),
        (1.0, 1.0, 64, 4, 4),  # min_frames raises the count...
        (1.0, 1.0, 2, 4, 2),  # ...but never above max_frames (no hidden floor)
        (0.3, 10.0, 64, 1, 3),  # 0.3 * 10 is 3.0000000000000004 in floats
        (0.0, 2.0, 64, 1, 1),
    ],
)
def test_frame_count(
    duration: float, fps: float, max_frames: int, min_frames: int, expected: int
) -> None:
    assert frame_count(duration, fps, max_frames=max_frames, min_frames=min_frames) == expected


def test_sample_times_are_segment_centres() -> None:
    assert sample_times(10.0, 4) == [1.25, 3.75, 6.25, 8.75]
    assert sample_times(3.0, 1) == [1.5]


def test_select_last_frame_shown() -> None:
    times = [0.0, 1.0, 2.0, 3.0]
    assert select_frame_indices(times, [0.5, 1.0, 2.9, 10.0]) == [0, 1, 2, 3]
    assert select_frame_indices([0.4, 1.0], [0.1, 0.5]) == [0, 0]  # before the first frame
    assert select_frame_indices([], [0.5]) == []


def test_picker_stops_once_done() -> None:
    picker = FramePicker([0.5, 1.5])
    assert picker.settle(0.0) == 0
    assert picker.settle(1.0) == 1
    assert not picker.done
    assert picker.settle(2.0) == 1
    assert picker.done and picker.remaining == 0


@pytest.mark.parametrize("fps", [0, -1.0, math.nan, math.inf])
def test_invalid_fps(fps: float) -> None:
    with pytest.raises(InvalidMediaParameter) as info:
        choose_frames([0.0], 1.0, fps, max_frames=4)
    assert info.value.code == "invalid_parameter"
    assert isinstance(info.value, ValueError) and isinstance(info.value, MediaError)


@pytest.mark.parametrize("max_frames", [0, -3])
def test_invalid_max_frames(max_frames: int) -> None:
    with pytest.raises(InvalidMediaParameter):
        choose_frames([0.0], 1.0, 2.0, max_frames=max_frames)


frame_times = st.lists(
    st.floats(min_value=0.0, max_value=100.0, allow_nan=False), min_size=1, max_size=200
).map(sorted)


@settings(max_examples=300, deadline=None)
@given(
    times=frame_times,
    duration=st.floats(min_value=1e-3, max_value=120.0),
    fps=st.floats(min_value=1e-3, max_value=60.0),
    max_frames=st.integers(min_value=1, max_value=128),
    min_frames=st.integers(min_value=1, max_value=8),
)
def test_choose_frames_properties(
    times: list[float], duration: float, fps: float, max_frames: int, min_frames: int
) -> None:
    chosen = choose_frames(times, duration, fps, max_frames=max_frames, min_frames=min_frames)
    wanted_count = max(1, min(max_frames, max(min_frames, math.ceil(duration * fps - 1e-9))))
    assert len(chosen) == wanted_count
    assert chosen == sorted(chosen)  # monotone
    for t, index in zip(sample_times(duration, wanted_count), chosen, strict=True):
        # the last frame whose time is <= t, or the first frame when none is
        assert index == max(0, bisect.bisect_right(times, t) - 1)
        assert times[index] <= t or index == 0
        assert index == len(times) - 1 or times[index + 1] > t
