"""Which frames to keep from a video: pure functions, no decoding.

Contract (the semantics of ``video_fps`` / ``video_max_frames``):

* ``n = min(max_frames, max(min_frames, ceil(duration * fps)))``, and at least 1. ``max_frames``
  wins over ``min_frames``: there is no hidden floor overriding the caller's cap.
* wanted times ``t_i = (i + 0.5) * duration / n``: the centres of ``n`` equal segments, relative
  to the stream's start.
* the frame chosen for ``t_i`` is the frame being shown at ``t_i``: the last frame (in decode
  order) whose presentation time is ``<= t_i``, or the first frame when none is. When the clip
  has fewer frames than ``n``, a frame may be chosen for several ``t_i``.

:class:`FramePicker` is the streaming form used by the decoder (one forward pass, stopping as
soon as every wanted time is settled); :func:`select_frame_indices` runs the same picker over a
list of times, so the tested function and the decoder share one implementation.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

from .errors import InvalidMediaParameter

__all__ = [
    "FramePicker",
    "choose_frames",
    "frame_count",
    "sample_times",
    "select_frame_indices",
    "validate_sampling",
]

_CEIL_SLACK = 1e-9


def validate_sampling(fps: float, max_frames: int, min_frames: int = 1) -> None:
    """Raise :class:`InvalidMediaParameter` for unusable sampling parameters."""
    if not (isinstance(fps, numbers.Real) and math.isfinite(fps) and fps > 0):
        raise InvalidMediaParameter(f"video_fps must be a number > 0, got {fps!r}.")
    if not isinstance(max_frames, numbers.Integral) or max_frames < 1:
        raise InvalidMediaParameter(
            f"video_max_frames must be an integer >= 1, got {max_frames!r}."
        )
    if not isinstance(min_frames, numbers.Integral) or min_frames < 1:
        raise InvalidMediaParameter(f"min_frames must be an integer >= 1, got {min_frames!r}.")


def frame_count(duration: float, fps: float, *, max_frames: int, min_frames: int = 1) -> int:
    """How many frames to sample from a clip of ``duration`` seconds.

    A duration that is not positive (zero, negative, NaN) counts as one frame's worth; one
    whose frame count overflows (infinite) asks for ``max_frames``. Unusable ``fps`` or
    limits raise :class:`InvalidMediaParameter`.
    """
    validate_sampling(fps, max_frames, min_frames)
    wanted_exact = duration * fps
    if not duration > 0:
        wanted = 1
    elif math.isinf(wanted_exact):
        wanted = max_frames
    else:
        wanted = math.ceil(wanted_exact - _CEIL_SLACK)
    return max(1, min(max_frames, max(min_frames, wanted)))


def sample_times(duration: float, count: int) -> list[float]:
    """Centres of ``count`` equal segments of ``[0, duration]``; all at 0 when the duration
    is not a finite positive number (there is no clip length to spread them over)."""
    if not (math.isfinite(duration) and duration > 0):
        return [0.0] * count
    step = duration / count
    return [(i + 0.5) * step for i in range(count)]


class FramePicker:
    """Assigns wanted times to frames fed one by one in decode order."""

    def __init__(self, wanted: Sequence[float]) -> None:
        self._wanted = list(wanted)
        self._next = 0

    @property
    def done(self) -> bool:
        """Every wanted time has been assigned."""
        return self._next >= len(self._wanted)

    @property
    def remaining(self) -> int:
        """Wanted times not yet assigned (at end of stream they go to the last frame)."""
        return len(self._wanted) - self._next

    def settle(self, time: float) -> int:
        """Feed a frame's time; return how many wanted times end before it.

        Those times belong to the previous frame (or to this one, when it is the first).
        """
        start = self._next
        while self._next < len(self._wanted) and self._wanted[self._next] < time:
            self._next += 1
        return self._next - start


def select_frame_indices(frame_times: Sequence[float], wanted: Sequence[float]) -> list[int]:
    """For each wanted time, the index of the frame shown then (see module docstring)."""
    if not frame_times:
        return []
    picker = FramePicker(wanted)
    chosen: list[int] = []
    previous: int | None = None
    for index, time in enumerate(frame_times):
        settled = picker.settle(time)
        chosen.extend([index if previous is None else previous] * settled)
        if picker.done:
            return chosen
        previous = index
    chosen.extend([len(frame_times) - 1] * picker.remaining)
    return chosen


def choose_frames(
    frame_times: Sequence[float],
    duration: float,
    fps: float,
    *,
    max_frames: int,
    min_frames: int = 1,
) -> list[int]:
    """Count, wanted times and selection in one call (the whole sampler, minus decoding)."""
    validate_sampling(fps, max_frames, min_frames)
    count = frame_count(duration, fps, max_frames=max_frames, min_frames=min_frames)
    return select_frame_indices(frame_times, sample_times(duration, count))
