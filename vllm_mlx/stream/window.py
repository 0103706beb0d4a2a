"""The bounded window of a connection's newest frames.

Contract: a :class:`FrameWindow` keeps at most ``size`` frames and at most ``max_bytes`` of
frame memory (JPEG plus decoded pixels; the newest frame is always kept), in arrival
order; a frame pushed into a full window evicts the oldest, so memory is bounded
whatever the input rate. It counts frames
that arrived since the last :meth:`take`; :meth:`take` returns the current frames (minus
those more than ``max_span`` seconds older than the newest, by the clients' timestamps)
and resets that count; taken frames are in the order of their timestamps, whatever the
arrival order. Counters (received, evicted unanalysed, dropped as stale, analysed) are
kept for replies and tests. Not thread-safe: one event loop owns it.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from .protocol import Frame


@dataclass
class WindowStats:
    received: int = 0
    evicted: int = 0  # pushed out before any analysis saw them
    stale: int = 0  # left out of an analysis by the max_span rule
    analysed: int = 0


class FrameWindow:
    def __init__(self, size: int, max_bytes: int) -> None:
        self.size = size
        self.max_bytes = max_bytes
        self.stats = WindowStats()
        self._frames: deque[tuple[Frame, bool]] = deque()  # (frame, seen by an analysis)
        self._bytes = 0
        self._new = 0
        self._byte_limited = False  # the byte budget, not ``size``, bounds the window

    def __len__(self) -> int:
        return len(self._frames)

    @property
    def new_frames(self) -> int:
        return self._new

    @property
    def nbytes(self) -> int:
        return self._bytes

    def _evict(self) -> None:
        frame, seen = self._frames.popleft()
        self._bytes -= frame.nbytes
        if not seen:
            self.stats.evicted += 1
            self._new = max(0, self._new - 1)

    def _shrink(self) -> None:
        while len(self._frames) > self.size:
            self._evict()
        self._byte_limited = False
        while len(self._frames) > 1 and self._bytes > self.max_bytes:
            self._byte_limited = True
            self._evict()

    def push(self, frame: Frame) -> None:
        self._frames.append((frame, False))
        self._bytes += frame.nbytes
        self._new += 1
        self.stats.received += 1
        self._shrink()

    def resize(self, size: int) -> None:
        self.size = size
        self._shrink()

    def ready(self, trigger: int) -> bool:
        """Whether ``trigger`` frames arrived since the last take (capped at the window)."""
        need = min(trigger, self.size)
        if self._byte_limited:
            need = min(need, len(self._frames))
        return self._new >= max(need, 1)

    def take(self, max_span: float | None) -> list[Frame]:
        """The frames to analyse now, by timestamp; resets the new-frame count."""
        frames = [frame for frame, _ in self._frames]
        self._frames = deque((frame, True) for frame in frames)
        self._new = 0
        frames.sort(key=lambda f: f.timestamp)  # capture order, whatever the arrival order
        if max_span is not None and frames:
            newest = frames[-1].timestamp
            fresh = [f for f in frames if f.timestamp >= newest - max_span]
            self.stats.stale += len(frames) - len(fresh)
            frames = fresh
        self.stats.analysed += len(frames)
        return frames
