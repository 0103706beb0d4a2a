"""Properties of the video frame sampler (:mod:`vllm_mlx.media.sampling`) over any inputs:
``n = min(max_frames, max(min_frames, ceil(duration * fps)))``, wanted times at segment
centres, monotonic, inside the clip, never more than ``max_frames``; tiny, huge, zero,
infinite and NaN durations give an answer, and bad ``fps`` a typed error, never a crash."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vllm_mlx.media import InvalidMediaParameter
from vllm_mlx.media.sampling import choose_frames, frame_count, sample_times

PROPERTY = settings(max_examples=200, deadline=None)
any_duration = st.floats(allow_nan=True, allow_infinity=True)
usable_duration = st.floats(min_value=1e-6, max_value=1e7)
any_fps = st.floats(min_value=1e-6, max_value=1e6)
max_frames = st.integers(min_value=1, max_value=1024)
min_frames = st.integers(min_value=1, max_value=64)


def expected_count(duration: float, fps: float, most: int, least: int) -> int:
    """The documented formula; an unusable duration counts as one frame's worth."""
    if math.isnan(duration) or duration <= 0:
        wanted = 1
    elif math.isinf(duration * fps):
        wanted = most
    else:
        wanted = math.ceil(duration * fps - 1e-9)
    return max(1, min(most, max(least, wanted)))


@PROPERTY
@given(duration=any_duration, fps=any_fps, most=max_frames, least=min_frames)
def test_count_follows_the_formula_for_any_duration(duration: float, fps: float, most: int,
                                                    least: int) -> None:
    count = frame_count(duration, fps, max_frames=most, min_frames=least)
    assert count == expected_count(duration, fps, most, least)
    assert 1 <= count <= most


@PROPERTY
@given(duration=usable_duration, count=st.integers(min_value=1, max_value=1024))
def test_times_are_segment_centres_inside_the_clip(duration: float, count: int) -> None:
    times = sample_times(duration, count)
    assert len(times) == count
    assert all(0 <= t < duration for t in times)
    assert all(a < b for a, b in zip(times, times[1:]))  # strictly increasing
    step = duration / count
    for i, t in enumerate(times):
        assert math.isclose(t, (i + 0.5) * step, rel_tol=1e-12)


@PROPERTY
@given(duration=any_duration, count=st.integers(min_value=1, max_value=1024))
def test_times_never_leave_the_clip(duration: float, count: int) -> None:
    times = sample_times(duration, count)
    assert len(times) == count
    assert all(math.isfinite(t) and t >= 0 for t in times)
    assert all(a <= b for a, b in zip(times, times[1:]))
    if math.isfinite(duration) and duration > 0:
        assert all(t < duration for t in times)
    else:  # no usable duration: every time is the start
        assert times == [0.0] * count


@PROPERTY
@given(frames=st.integers(min_value=1, max_value=300), source_fps=st.floats(1.0, 120.0),
       duration=any_duration, fps=any_fps, most=max_frames, least=min_frames)
def test_choice_is_monotonic_and_bounded(frames: int, source_fps: float, duration: float,
                                         fps: float, most: int, least: int) -> None:
    frame_times = [i / source_fps for i in range(frames)]
    chosen = choose_frames(frame_times, duration, fps, max_frames=most, min_frames=least)
    assert 1 <= len(chosen) <= most
    assert len(chosen) == expected_count(duration, fps, most, least)
    assert chosen == sorted(chosen)
    assert all(0 <= i < frames for i in chosen)


@pytest.mark.parametrize("fps", [0.0, -1.0, math.nan, math.inf, -math.inf])
@pytest.mark.parametrize("duration", [0.0, 1e-300, 3.0, 1e300, math.inf, math.nan])
def test_bad_fps_is_a_typed_error(duration: float, fps: float) -> None:
    with pytest.raises(InvalidMediaParameter):
        frame_count(duration, fps, max_frames=8)
    with pytest.raises(InvalidMediaParameter):
        choose_frames([0.0, 0.5], duration, fps, max_frames=8)


@pytest.mark.parametrize(("duration", "expected"), [
    (math.inf, 8), (1e308, 8), (math.nan, 1), (-5.0, 1), (0.0, 1), (5e-324, 1),
])
def test_extreme_durations(duration: float, expected: int) -> None:
    assert frame_count(duration, 60.0, max_frames=8) == expected
