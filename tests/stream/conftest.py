"""Live-video test helpers: JPEG frames, an in-thread uvicorn server on the tiny qwen2_vl
engine (real WebSockets, so every wait has a timeout), and message helpers."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.live_server import serving
from vllm_mlx.config import Settings

API_KEY = "test-key"
MESSAGE_LIMIT = 256 * 1024  # small, so the 1009 case is cheap


def jpeg_bytes(index: int = 0, size: tuple[int, int] = (64, 48)) -> bytes:
    from vllm_mlx.stream.sources import TestPatternSource

    source = TestPatternSource(size)
    source.index = index
    frame = source.read()
    assert frame is not None
    buffer = io.BytesIO()
    frame.to_image().save(buffer, format="JPEG", quality=70)
    return buffer.getvalue()


def frame_message(timestamp: float, index: int = 0, size: tuple[int, int] = (64, 48)) -> str:
    data = base64.b64encode(jpeg_bytes(index, size)).decode()
    return json.dumps({"timestamp": timestamp, "frame": data})


@dataclass
class LiveServer:
    app: Any
    port: int

    def url(self, path: str = "/", key: str | None = API_KEY, **query: Any) -> str:
        params = ({"api_key": key} if key else {}) | {k: str(v) for k, v in query.items()}
        qs = "&".join(f"{k}={v}" for k, v in params.items())
        return f"ws://127.0.0.1:{self.port}{path}" + (f"?{qs}" if qs else "")

    @property
    def service(self) -> Any:
        return self.app.state.stream


@pytest.fixture(scope="module")
def live_server(engine_for) -> Iterator[LiveServer]:
    from vllm_mlx.api.app import create_app

    engine = engine_for("qwen2_vl")
    settings = Settings(model="tiny:qwen2_vl", api_key=API_KEY,
                        stream_max_message_bytes=MESSAGE_LIMIT)
    app = create_app(settings, engine)
    # uvicorn's own limit is looser, so the app's 1009 check is what is tested here
    with serving(app, ws_max_size=4 * MESSAGE_LIMIT) as port:
        yield LiveServer(app, port)


async def recv_json(ws: Any, timeout: float = 20.0) -> dict[str, Any]:
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


async def next_reply(ws: Any, timeout: float = 20.0) -> dict[str, Any]:
    """The next ``vlm_reply`` message, failing on an error message."""
    deadline = time.monotonic() + timeout
    while True:
        message = await recv_json(ws, max(deadline - time.monotonic(), 0.01))
        assert "error" not in message, message
        if "vlm_reply" in message:
            return message


async def send_window(ws: Any, start: float, count: int = 5, first_index: int = 0) -> None:
    for i in range(count):
        await ws.send(frame_message(start + i * 0.1, first_index + i))


async def wait_for(predicate: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)
