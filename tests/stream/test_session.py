"""``StreamSession`` on a scripted engine (no model): decode-on-arrival switching,
engine failures, and a client that never reads."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from tests.stream.conftest import frame_message, wait_for
from vllm_mlx.engine.errors import EngineClosed, EngineOverloaded
from vllm_mlx.engine.types import GenerationRequest, GenerationResult
from vllm_mlx.stream.config import StreamLimits
from vllm_mlx.stream.session import StreamService


@dataclass
class ScriptedEngine:
    """Raises the next queued error, else answers a request per ``allow.release()``."""

    errors: list[Exception] = field(default_factory=list)
    requests: list[GenerationRequest] = field(default_factory=list)
    allow: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(0))
    model: Any = field(default_factory=lambda: SimpleNamespace(
        is_vision=True, reference="scripted", video_min_frames=2,
        capabilities=SimpleNamespace(native_video=True)))

    async def complete(self, request: GenerationRequest) -> GenerationResult:
        self.requests.append(request)
        if self.errors:
            raise self.errors.pop(0)
        await self.allow.acquire()
        return GenerationResult("ok", (1,), "stop", 10, 1)


@dataclass
class Recorder:
    sent: list[dict] = field(default_factory=list)
    closed: tuple[int, str] | None = None
    stuck: bool = False

    async def send(self, payload: dict) -> None:
        if self.stuck:
            await asyncio.Event().wait()
        self.sent.append(payload)

    async def close(self, code: int, reason: str) -> None:
        self.closed = (code, reason)


def open_session(engine: ScriptedEngine, transport: Recorder, **query: str):
    service = StreamService(engine, StreamLimits())  # type: ignore[arg-type]
    return service, service.open(query, transport)


def replies(transport: Recorder) -> list[dict]:
    return [m for m in transport.sent if "vlm_reply" in m]


async def test_only_the_frames_an_analysis_will_take_are_decoded_on_arrival():
    engine, transport = ScriptedEngine(), Recorder()
    _, session = open_session(engine, transport)
    for i in range(5):
        await session.receive(frame_message(float(i), i))
    await wait_for(lambda: len(engine.requests) == 1)
    assert session.decode_on_arrival
    for cycle in range(1, 4):  # 40 frames arrive during each analysis: 8 windows' worth
        for i in range(40):
            await session.receive(frame_message(cycle * 100 + i, i))
        engine.allow.release()
        await wait_for(lambda c=cycle: len(engine.requests) == c + 1)
    assert not session.decode_on_arrival
    for i in range(5):
        await session.receive(frame_message(1000.0 + i, i))
    assert all(f.image is None for f, _ in session.window._frames)  # JPEG until analysed
    for i in range(5, 30):  # a cycle's last frames are the ones analysed: decoded now
        await session.receive(frame_message(1000.0 + i, i))
    assert all(f.image is not None for f, _ in session.window._frames)
    for _ in range(2):
        engine.allow.release()
    await wait_for(lambda: len(replies(transport)) == 5)
    assert replies(transport)[-1]["timestamps"] == [1025.0, 1026.0, 1027.0, 1028.0, 1029.0]
    assert len(engine.requests[-1].messages[0].content[0].video.frames) == 5
    await session.close()


async def test_engine_errors_are_reported_and_the_stream_goes_on():
    engine = ScriptedEngine(errors=[EngineOverloaded("too many waiting requests")])
    transport = Recorder()
    _, session = open_session(engine, transport)
    engine.allow.release()
    for round_ in range(2):
        for i in range(5):
            await session.receive(frame_message(round_ * 10 + i, i))
        await wait_for(lambda r=round_: len(transport.sent) == r + 1)
    assert transport.sent[0]["error"]["code"] and transport.sent[0]["error"]["type"] == (
        "rate_limit_error")
    assert transport.sent[1]["vlm_reply"] == "ok" and transport.closed is None
    await session.close()


async def test_engine_shutdown_closes_with_1012():
    engine, transport = ScriptedEngine(errors=[EngineClosed("shutting down")]), Recorder()
    service, session = open_session(engine, transport)
    for i in range(5):
        await session.receive(frame_message(float(i), i))
    await wait_for(lambda: transport.closed is not None)
    assert transport.closed[0] == 1012 and "error" in transport.sent[0]
    assert not await session.receive(frame_message(9.0))
    await session.close()
    assert not service.sessions


async def test_a_client_that_never_reads_does_not_stall_receiving():
    engine, transport = ScriptedEngine(), Recorder(stuck=True)
    _, session = open_session(engine, transport)
    for _ in range(200):  # 200 error replies, none of which can be delivered
        assert await asyncio.wait_for(session.receive("{bad json"), 5)
    await asyncio.wait_for(session.close(), 5)
