"""``VideoStream``: capture frames on a thread and hand them to a callback as the seed's
JSON messages, ready for ``websocket.send``.

Contract (seed ``om1_vlm.VideoStream``): ``VideoStream(frame_callback=None, fps=30,
resolution=(640, 480), jpeg_quality=70, device_index=0)`` with ``start()`` / ``stop()``.
A thread reads frames from the source (camera ``device_index`` by default; ``source=`` a
video file path or any :class:`~vllm_mlx.stream.sources.FrameSource`, e.g.
:class:`~vllm_mlx.stream.sources.TestPatternSource`), holds ``fps``, JPEG-encodes each
frame at ``jpeg_quality`` and calls ``frame_callback`` with
``json.dumps({"timestamp": capture_time, "frame": base64_jpeg})``. Callbacks run on the
event loop that was running when the stream was made (or started, or ``loop=``): a
coroutine function is scheduled there, a plain function is called there (so the seed's
``lambda f: asyncio.create_task(websocket.send(f))`` works), and an awaitable it returns
is scheduled too. With no running loop, plain callbacks run on the capture thread and
coroutines on a private loop thread. Frames are not encoded when the stream falls
behind: late against its schedule, or more than ``max_pending`` deliveries not finished
yet (a slow network). ``start()`` raises :class:`~vllm_mlx.stream.sources.SourceError`
when the camera or file cannot be opened; ``stop()`` ends the thread and releases it.
"""

from __future__ import annotations

import asyncio
import base64
import inspect
import io
import json
import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from .sources import CameraSource, FileSource, FrameSource, RawFrame

logger = logging.getLogger(__name__)

FrameCallback = Callable[[str], Any]
Decision = Literal["send", "skip", "drop"]
FRESH_READ_S = 0.002  # a live read that waited at least this long got a new frame


@dataclass
class StreamStats:
    captured: int = 0
    sent: int = 0
    skipped: int = 0  # not encoded: behind schedule or too many deliveries pending
    dropped: int = 0  # a live source faster than ``fps``: decimated
    failed: int = 0  # callbacks that raised


class Pacer:
    """Holds a frame rate: decides, per frame read, whether to send it, and when."""

    def __init__(self, fps: float) -> None:
        self.period = 1.0 / fps
        self.next_due: float | None = None

    def decide(self, now: float, live: bool, fresh: bool) -> tuple[Decision, float]:
        """(decision, seconds to wait before sending). ``fresh``: a live read waited."""
        due = now if self.next_due is None else self.next_due
        if now < due:
            if live and now < due - self.period / 2:
                return "drop", 0.0
            self.next_due = due + self.period
            return "send", (0.0 if live else due - now)
        late = 0.0 if fresh else now - due
        if late > self.period:
            missed = int(late / self.period)
            self.next_due = due + (missed + 1) * self.period
            return "skip", 0.0
        self.next_due = max(due, now - self.period / 2) + self.period
        return "send", 0.0


def encode_message(frame: RawFrame, quality: int, timestamp: float) -> str:
    buffer = io.BytesIO()
    frame.to_image().save(buffer, format="JPEG", quality=quality)
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return json.dumps({"timestamp": timestamp, "frame": data})


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def _close_private_loop(loop: asyncio.AbstractEventLoop, thread: threading.Thread,
                        timeout: float) -> None:
    """Let the coroutine callbacks already scheduled on ``loop`` finish (for at most
    ``timeout`` seconds; the rest are cancelled), then stop and close it."""
    async def finish() -> None:
        pending = asyncio.all_tasks() - {asyncio.current_task()}
        if pending:
            _, late = await asyncio.wait(pending, timeout=timeout)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        loop.stop()

    asyncio.run_coroutine_threadsafe(finish(), loop)
    thread.join(timeout + 1.0)
    if not loop.is_running():
        loop.close()


async def _awaited(awaitable: Any) -> Any:
    return await awaitable


class VideoStream:
    def __init__(self, frame_callback: FrameCallback | None = None, fps: float = 30,
                 resolution: tuple[int, int] = (640, 480), jpeg_quality: int = 70,
                 device_index: int = 0, *, source: FrameSource | str | Path | None = None,
                 loop: asyncio.AbstractEventLoop | None = None,
                 max_pending: int | None = None) -> None:
        if not 0 < fps < math.inf:
            raise ValueError("fps must be a finite number > 0")
        if not 0 <= jpeg_quality <= 100:
            raise ValueError("jpeg_quality must be in 0..100")
        if len(resolution) != 2 or min(resolution) < 1:
            raise ValueError(f"resolution must be (width, height) in pixels, not {resolution!r}")
        self.frame_callback = frame_callback
        self.fps = fps
        self.resolution = resolution
        self.jpeg_quality = jpeg_quality
        self.device_index = device_index
        self.max_pending = max_pending if max_pending is not None else max(2, int(fps))
        self.stats = StreamStats()
        self.error: BaseException | None = None
        self._source_spec = source
        self._source: FrameSource | None = None
        self._loop = loop or _running_loop()
        self._own_loop: asyncio.AbstractEventLoop | None = None  # for coroutine callbacks
        self._own_thread: threading.Thread | None = None  # that runs it, when there is none
        self._stop = threading.Event()
        self._finished = threading.Event()
        self._thread: threading.Thread | None = None
        self._pending = 0
        self._inflight: set[Any] = set()  # scheduled sends not done yet
        self._lock = threading.Lock()

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def _caller_owns_source(self) -> bool:
        return self._source_spec is not None and not isinstance(self._source_spec, str | Path)

    def _open_source(self) -> FrameSource:
        spec = self._source_spec
        if spec is None:
            return CameraSource(self.device_index, self.resolution, self.fps)
        if isinstance(spec, str | Path):
            return FileSource(spec, self.resolution)
        return spec

    def start(self) -> None:
        """Open the source (raising :class:`SourceError`) and start the capture thread."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._loop = self._loop or _running_loop()
        self._source = self._open_source()
        self._stop.clear()
        self._finished.clear()
        self._thread = threading.Thread(target=self._run, name="video-stream", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        """Stop capturing, wait for the thread, release the source."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)
        if self._own_loop is not None and self._own_thread is not None:
            _close_private_loop(self._own_loop, self._own_thread, timeout)
            self._own_loop, self._own_thread = None, None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the source is finished (or the stream stopped)."""
        return self._finished.wait(timeout)

    # -- capture thread --------------------------------------------------------------------

    def _run(self) -> None:
        source = self._source
        assert source is not None
        pacer = Pacer(self.fps)
        try:
            while not self._stop.is_set():
                started = time.monotonic()
                frame = source.read()
                if frame is None:
                    break
                self.stats.captured += 1
                now = time.monotonic()
                decision, wait = pacer.decide(now, source.live, now - started >= FRESH_READ_S)
                if decision == "drop":
                    self.stats.dropped += 1
                elif decision == "skip":
                    self.stats.skipped += 1
                elif self._stop.wait(wait):
                    break
                elif self._pending_count() >= self.max_pending:
                    self.stats.skipped += 1
                else:
                    self._deliver(encode_message(frame, self.jpeg_quality, time.time()))
        except Exception as exc:  # reported on .error; the thread must end cleanly
            logger.error("video stream stopped: %s", exc)
            self.error = exc
        finally:
            if not self._caller_owns_source:  # a source object given to us is the caller's
                source.close()
            self._finished.set()

    # -- delivery --------------------------------------------------------------------------

    def _pending_count(self) -> int:
        with self._lock:
            return self._pending

    def _track(self, delta: int) -> None:
        with self._lock:
            self._pending += delta

    def _done(self, future: Any) -> None:
        with self._lock:
            self._inflight.discard(future)
        self._track(-1)
        if not future.cancelled() and future.exception() is not None:
            self.stats.failed += 1
            logger.debug("frame delivery failed: %s", future.exception())

    def _private_loop(self) -> asyncio.AbstractEventLoop:
        if self._own_loop is None:
            loop = asyncio.new_event_loop()
            thread = threading.Thread(target=loop.run_forever, name="video-stream-loop",
                                      daemon=True)
            thread.start()
            self._own_loop, self._own_thread = loop, thread
        return self._own_loop

    def _schedule(self, awaitable: Any, loop: asyncio.AbstractEventLoop) -> None:
        self._track(1)
        future: Any
        if _running_loop() is loop:
            future = asyncio.ensure_future(awaitable)
        else:
            if not inspect.iscoroutine(awaitable):
                awaitable = _awaited(awaitable)
            future = asyncio.run_coroutine_threadsafe(awaitable, loop)
        with self._lock:  # an event loop holds its tasks weakly: keep each until it is done
            self._inflight.add(future)
        future.add_done_callback(self._done)

    def _call(self, callback: FrameCallback, message: str) -> None:
        try:
            result = callback(message)
        except Exception as exc:
            self.stats.failed += 1
            logger.debug("frame callback failed: %s", exc)
            return
        self.stats.sent += 1
        if inspect.isawaitable(result):
            self._schedule(result, _running_loop() or self._private_loop())

    def _deliver(self, message: str) -> None:
        callback = self.frame_callback
        if callback is None:
            return
        loop = self._loop if self._loop is not None and not self._loop.is_closed() else None
        try:
            if inspect.iscoroutinefunction(callback):
                self.stats.sent += 1
                self._schedule(callback(message), loop or self._private_loop())
            elif loop is not None:
                loop.call_soon_threadsafe(self._call_tracked, callback, message)
                self._track(1)
            else:
                self._call(callback, message)
        except RuntimeError as exc:  # the loop was closed under us
            self.stats.failed += 1
            logger.debug("frame delivery failed: %s", exc)

    def _call_tracked(self, callback: FrameCallback, message: str) -> None:
        self._track(-1)
        self._call(callback, message)
