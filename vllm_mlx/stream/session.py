"""One live-video connection, and the service that owns all of them. Framework-free.

Contract: :class:`StreamService` (one per app, on ``app.state.stream``) opens a
:class:`StreamSession` per connection over any :class:`Transport` (send a JSON object,
close with a code). :meth:`StreamSession.receive` handles one client message: too large
-> close 1009; bad JSON, base64, image or config -> an ``{"error": ...}`` message and the
connection stays open; a config message -> new settings, acknowledged with
``{"config": {...}}``; a frame -> pushed into the bounded window. Receiving never waits
for the model, so a sender is never stalled: one analyser task per connection runs the
newest window whenever the previous analysis is done, ``trigger`` new frames arrived and
``interval`` has passed, and sends that connection its ``{"vlm_reply": ...}``. All
connections submit to the one engine concurrently (the engine batches them). Outgoing
messages go through a bounded outbox so a client that does not read cannot stall its
receive loop either. JPEG checks and decoding run on the service's own two worker
threads, never on the event loop; a frame is decoded as it arrives when it is likely to
be analysed (the newest of the frames an analysis cycle brings), else only if analysed.
Decoded frames are also resized there to the size the model's processor would resize
them to (:mod:`vllm_mlx.stream.presize`; the model input is unchanged), so the engine's
thread does less per window; ``presize=False`` turns that off.
:meth:`StreamSession.close` cancels a running analysis, which cancels its engine
request and frees its slot.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any, Protocol, TypeVar

from ..engine import Engine
from ..engine.errors import EngineClosed
from ..errors import APIError, to_api_error
from ..media import MediaPolicy
from .analysis import (
    DecodedWindow,
    ModelTraits,
    arrival_layout,
    build_request,
    decode_frames,
    frame_sizes,
    ready_window,
    reply_message,
)
from .config import StreamConfig, StreamLimits, parse_config
from .presize import FrameSizer, Kind, presize
from .protocol import DECODE_PIXELS, ConfigUpdate, Frame, check_order, parse_message
from .window import FrameWindow

logger = logging.getLogger(__name__)

CLOSE_TOO_BIG = 1009
CLOSE_POLICY = 1008
CLOSE_UNSUPPORTED = 1003
CLOSE_RESTART = 1012
CLOSE_TRY_LATER = 1013
OUTBOX_SIZE = 64
DECODE_THREADS = 2
EAGER_SLACK = 2  # frames decoded on arrival beyond those an analysis is expected to take
T = TypeVar("T")
FLUSH_TIMEOUT_S = 1.0


class Transport(Protocol):
    async def send(self, payload: dict[str, Any]) -> None: ...

    async def close(self, code: int, reason: str) -> None: ...


class StreamRefused(APIError):
    """A connection the service will not open; ``close_code`` says how to close it."""

    close_code: int = CLOSE_POLICY


def _refuse(status: int, message: str, code: str, close_code: int,
            param: str | None = None) -> StreamRefused:
    error = StreamRefused(status, message, param=param, code=code)
    error.close_code = close_code
    return error


class StreamService:
    """Every live-video connection of one app, on one engine."""

    def __init__(self, engine: Engine, limits: StreamLimits, max_connections: int = 64,
                 window_bytes: int = 32 * 1024 * 1024, presize: bool = True) -> None:
        self.engine = engine
        self.limits = limits
        self.max_connections = max_connections
        self.window_bytes = window_bytes
        self.policy = MediaPolicy(max_image_pixels=limits.max_image_pixels)
        self.sessions: set[StreamSession] = set()
        self.analysing = 0  # analyses now in the engine, all connections together
        self.frames_accepted = 0  # since start, all connections together (for /metrics)
        self.replies_sent = 0
        self.messages_refused = 0
        self._ids = itertools.count(1)
        processor = getattr(engine.model, "processor", None)
        self.sizer = FrameSizer(processor, DECODE_PIXELS) if presize and processor else None
        # frame parsing/decoding for all connections: bounded, and off the shared pool
        self._workers = ThreadPoolExecutor(DECODE_THREADS, thread_name_prefix="stream-decode")

    async def run_blocking(self, func: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._workers, func, *args)

    def accept(self, data: str | bytes, decode_pixels: int, layout: tuple[Kind, int]
               ) -> Frame | ConfigUpdate:
        """A checked message (blocking: worker threads); a frame decoded now is presized
        for a window of ``layout``."""
        item = parse_message(data, self.limits.max_image_pixels, decode_pixels)
        if isinstance(item, Frame) and item.image is not None and self.sizer is not None:
            # no waiting for another shape's calibration: the analysis fits it if needed
            size = self.sizer.target(*layout, item.width, item.height, wait=False)
            if size is not None:
                item = replace(item, image=presize(item.image, size))
        return item

    def traits(self) -> ModelTraits:
        model = self.engine.model
        return ModelTraits(native_video=bool(model.capabilities.native_video),
                           video_min_frames=int(model.video_min_frames))

    def open(self, query: Mapping[str, str], transport: Transport) -> StreamSession:
        """A started session, or :class:`StreamRefused` (text model, full, bad query)."""
        if not self.engine.model.is_vision:
            raise _refuse(400, f"{self.engine.model.reference} is a text-only model: live "
                          "video needs a vision-language model", "model_not_vision",
                          CLOSE_UNSUPPORTED)
        if len(self.sessions) >= self.max_connections:
            raise _refuse(503, f"too many live-video connections ({self.max_connections}); "
                          "retry later", "too_many_streams", CLOSE_TRY_LATER)
        try:
            config = parse_config(query, self.limits)
        except APIError as exc:
            raise _refuse(exc.status, exc.message, exc.code or "invalid_config",
                          CLOSE_POLICY, exc.param) from None
        session = StreamSession(self, config, transport, f"stream-{next(self._ids)}")
        self.sessions.add(session)
        session.start()
        return session


class StreamSession:
    def __init__(self, service: StreamService, config: StreamConfig, transport: Transport,
                 session_id: str) -> None:
        self.service = service
        self.config = config
        self.transport = transport
        self.id = session_id
        self.window = FrameWindow(config.window, service.window_bytes)
        self.replies = 0
        self._wake = asyncio.Event()
        self._outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue(OUTBOX_SIZE)
        self._tasks: list[asyncio.Task[None]] = []
        self._last_start = float("-inf")
        self._per_analysis = 0.0  # frames arriving per analysis cycle (moving average)
        self._received_at_take = 0
        self._newest_stamp: float | None = None  # the newest frame timestamp accepted
        self.closed = False

    @property
    def decode_on_arrival(self) -> bool:
        """Whether the next frame is decoded as it arrives (off the reply's critical path):
        yes if it is likely to be in the next analysis, i.e. among the newest ``window``
        (plus :data:`EAGER_SLACK`) of the frames an analysis cycle brings (moving
        average); earlier ones would mostly be replaced unseen, so they are decoded only
        if an analysis takes them."""
        place = self.window.stats.received - self._received_at_take + 1
        return place > self._per_analysis - self.config.window - EAGER_SLACK

    def _count_cycle(self) -> None:
        arrived = self.window.stats.received - self._received_at_take
        self._received_at_take = self.window.stats.received
        self._per_analysis = 0.7 * self._per_analysis + 0.3 * arrived

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._send_forever(), name=f"{self.id}-send"),
                       asyncio.create_task(self._analyse_forever(), name=f"{self.id}-analyse")]

    def emit(self, payload: dict[str, Any]) -> None:
        """Queue a message for the client; dropped (and logged) if the client never reads."""
        try:
            self._outbox.put_nowait(payload)
        except asyncio.QueueFull:
            logger.warning("%s: client is not reading; dropped an outgoing message", self.id)

    async def receive(self, data: str | bytes) -> bool:
        """Handle one client message; False once the connection has been closed."""
        if len(data) > self.service.limits.max_message_bytes:
            await self._close(CLOSE_TOO_BIG, f"message of {len(data)} bytes is over the limit "
                              f"of {self.service.limits.max_message_bytes}")
            return False
        try:
            item = await self.service.run_blocking(
                self.service.accept, data, DECODE_PIXELS if self.decode_on_arrival else 0,
                arrival_layout(self.config, self.service.traits()))
            if isinstance(item, ConfigUpdate):
                self._configure(item.values)
            else:
                check_order(item.timestamp, self._newest_stamp)
                self._newest_stamp = max(item.timestamp, self._newest_stamp or 0.0)
                self.window.push(item)
                self.service.frames_accepted += 1
                self._wake.set()
        except APIError as exc:
            self.service.messages_refused += 1
            self.emit(exc.body())
        return not self.closed

    def _configure(self, values: dict[str, Any]) -> None:
        self.config = parse_config(values, self.service.limits, self.config)
        self.window.resize(self.config.window)
        self.emit({"config": self.config.public()})
        self._wake.set()

    async def _close(self, code: int, reason: str) -> None:
        """Close after the queued messages went out (up to a second)."""
        if self.closed:
            return
        self.closed = True
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._outbox.join(), FLUSH_TIMEOUT_S)
        with contextlib.suppress(Exception):
            await self.transport.close(code, reason[:120])

    async def close(self) -> None:
        """Stop sending and cancel a running analysis (its engine request is cancelled)."""
        self.closed = True
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self.service.sessions.discard(self)

    async def _send_forever(self) -> None:
        while True:
            payload = await self._outbox.get()
            try:
                await self.transport.send(payload)
            except Exception:  # the client is gone; the receive loop will notice
                self.closed = True
                return
            finally:
                self._outbox.task_done()

    async def _analyse_forever(self) -> None:
        while not self.closed:
            await self._wake.wait()
            self._wake.clear()
            if not self.window.ready(self.config.trigger):
                continue
            delay = self._last_start + self.config.interval - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            self._last_start = time.monotonic()
            self._count_cycle()
            frames = self.window.take(self.config.max_span)
            if frames:
                await self._analyse(frames, self.config)

    async def _analyse(self, frames: list[Frame], config: StreamConfig) -> None:
        traits, sizer = self.service.traits(), self.service.sizer
        decoded = ready_window(frames, config, traits, sizer)  # all done on arrival?
        if decoded is None:
            decoded = await self.service.run_blocking(
                decode_frames, frames, self.service.policy,
                lambda kept: frame_sizes(kept, config, traits, sizer))
        for error in decoded.errors:
            self.emit(error.body())
        if decoded.frames:
            await self._generate(decoded, config)

    async def _generate(self, decoded: DecodedWindow, config: StreamConfig) -> None:
        traits = self.service.traits()
        request = build_request(decoded, config, traits, f"{self.id}-{self.replies + 1}")
        as_video = any(p.type == "video" for p in request.messages[0].content)
        started = time.monotonic()
        self.service.analysing += 1
        try:
            result = await self.service.engine.complete(request)
        except Exception as exc:
            self.emit(to_api_error(exc).body())
            if isinstance(exc, EngineClosed):
                await self._close(CLOSE_RESTART, "the server is shutting down")
            return
        finally:
            self.service.analysing -= 1
        now = time.monotonic()
        self.replies += 1
        self.service.replies_sent += 1
        latency = now - decoded.frames[-1].received
        self.emit(reply_message(result, decoded.frames, latency_s=latency,
                                generation_s=now - started, as_video=as_video,
                                received=self.window.stats.received))
